/**
 * webmoe/node: the Node-only half of the public API (file system, processes, HTTP server). Import the rest from
 * `webmoe`, which stays browser-safe.
 */
export { folderFiles, openCheckpointDir } from './model/node-checkpoint.js';
export { fileSource } from './format/node-source.js';
export { runAgent, startServer, Toolbox } from './agent/index.js';
export { PacedLink, throttledExpertSource, type PacedLinkOptions } from './offload/throttled.js';
