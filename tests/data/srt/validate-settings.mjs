// Validates srt settings files with sandbox-runtime's own zod schema
// (SandboxRuntimeConfigSchema, the one `srt --settings` applies), imported
// from an installed package: no network.
//
//   node validate-settings.mjs PACKAGE_DIR FILE...
//
// Prints one JSON line per file: {"file", "ok", "issues", "dropped"}.
// `dropped` lists the keys of the file that the parsed config no longer
// holds: srt's object schemas strip unknown keys silently, so a key srt does
// not know would pass validation and enforce nothing. A file passes only with
// no issue and nothing dropped. Exit status 0 when every file passes.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [pkg, ...files] = process.argv.slice(2);
if (!pkg || files.length === 0) {
  console.error('usage: node validate-settings.mjs PACKAGE_DIR FILE...');
  process.exit(2);
}
const manifest = JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8'));
const entry = join(pkg, manifest.main ?? 'dist/index.js');
const { SandboxRuntimeConfigSchema } = await import(pathToFileURL(entry).href);
if (!SandboxRuntimeConfigSchema) {
  console.error(`${entry} exports no SandboxRuntimeConfigSchema`);
  process.exit(2);
}

// Every object key of `input` that `output` lacks, as dotted paths.
function dropped(input, output, at, out) {
  if (Array.isArray(input)) {
    input.forEach((v, i) => dropped(v, Array.isArray(output) ? output[i] : undefined, `${at}[${i}]`, out));
  } else if (input !== null && typeof input === 'object') {
    for (const [k, v] of Object.entries(input)) {
      const here = at ? `${at}.${k}` : k;
      if (output === null || typeof output !== 'object' || !(k in output)) out.push(here);
      else dropped(v, output[k], here, out);
    }
  }
  return out;
}

let failed = false;
for (const file of files) {
  let json;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    console.log(JSON.stringify({ file, ok: false, issues: [`not JSON: ${e.message}`], dropped: [] }));
    failed = true;
    continue;
  }
  const r = SandboxRuntimeConfigSchema.safeParse(json);
  const issues = r.success
    ? []
    : r.error.issues.map(i => `${i.path.join('.') || '(root)'}: ${i.message}`);
  const lost = r.success ? dropped(json, r.data, '', []) : [];
  const ok = r.success && lost.length === 0;
  failed ||= !ok;
  console.log(JSON.stringify({ file, ok, issues, dropped: lost, version: manifest.version }));
}
process.exit(failed ? 1 : 0);
