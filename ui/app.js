// app.js — the entry point index.html loads as a module; the UI itself is
// in js/ (main.js starts it). Kept so installed copies and bookmarks of
// /ui/app.js keep working.
import './js/main.js';
