// cask.js
