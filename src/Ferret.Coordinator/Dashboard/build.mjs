// Bundles the dashboard into one script, one stylesheet and the page: node build.mjs OUTPUT_FOLDER.
// Run by the coordinator's build (Ferret.Coordinator.csproj) after `npm ci`; nothing is fetched at run time.
import { build } from 'esbuild';
import { copyFile, mkdir, rm } from 'node:fs/promises';
import path from 'node:path';

const out = process.argv[2];
if (!out) {
  console.error('build.mjs: name the output folder (node build.mjs ../wwwroot)');
  process.exit(2);
}
await rm(out, { recursive: true, force: true });
await mkdir(out, { recursive: true });
const common = { bundle: true, minify: true, logLevel: 'warning', legalComments: 'eof', target: ['es2022', 'chrome100', 'firefox100', 'safari15'] };
await build({ ...common, entryPoints: ['src/app.js'], outfile: path.join(out, 'app.js'), format: 'esm', platform: 'browser' });
await build({ ...common, entryPoints: ['src/app.css'], outfile: path.join(out, 'app.css') });
await copyFile('src/index.html', path.join(out, 'index.html'));
