'use strict';
// Removes "resolved" fields from an npm lock file so that it names no registry host.
const fs = require('fs');

const file = process.argv[2] || 'package-lock.json';
if (!fs.existsSync(file)) process.exit(0);
const lock = JSON.parse(fs.readFileSync(file, 'utf8'));
let removed = 0;
for (const entry of Object.values(lock.packages || {})) {
  if (entry && typeof entry === 'object' && 'resolved' in entry) {
    delete entry.resolved;
    removed += 1;
  }
}
if (removed) fs.writeFileSync(file, JSON.stringify(lock, null, 2) + '\n');
