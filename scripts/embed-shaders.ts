/**
 * Embeds the WGSL kernels into TypeScript modules as strings, so Node and the browser bundle load kernels without
 * a runtime file fetch or a bundler plugin (as ggml's embed_wgsl.py does):
 *   shaders/*.wgsl                           -> src/gpu/shaders.gen.ts            SHADERS (the library's kernels)
 *   shaders/reference/*.wgsl, shaders/bench/*.wgsl -> src/gpu/shaders-extra.gen.ts  EXTRA_SHADERS (naive twins and
 *                                              bench kernels, registered with the kernel registry on import: imported
 *                                              by tests and `webmoe bench` only, never by the library, so they stay
 *                                              out of its bundle)
 * Four directives, each on a line of its own:
 *   // #include "NAME.wgsl"   replaced by shaders/include/NAME.wgsl (includes may include; each file once per kernel):
 *                             the helpers many kernels share (E4M3 / BF16 decoders) live once, like ggml's snippets.
 *   // #formats fp8 bf16 int4 a kernel family: one kernel per weight format, named STEM for fp8 and STEM_FMT for the
 *                             others; `// #include "format.wgsl"` splices shaders/include/format_FMT.wgsl, the
 *                             format's code loads, scale lookup and decode (the interface is in format_fp8.wgsl).
 *   // #precisions f32 f16    the same for the precision the products are formed in: STEM for f32, STEM_f16;
 *                             `// #include "precision.wgsl"` splices shaders/include/precision_PREC.wgsl (the
 *                             interface is in precision_f32.wgsl). A file is a family of one kind at most.
 *   // #each A B: a1 b1; a2 b2   ...   // #end
 *                             the lines between are written once per `;`-separated tuple with $A, $B replaced (the
 *                             routed / shared copies of a dot product over two buffers: WGSL cannot pass a storage
 *                             buffer to a function).
 * Run by `npm run build`; `npm run embed-shaders` after editing a .wgsl; `--check` exits 1 when a generated file
 * is stale (the test suite runs it).
 */
import { readdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const shaderDir = join(root, 'shaders');
const includeDir = join(shaderDir, 'include');
const INCLUDE = /^\/\/ #include "([a-z0-9_]+\.wgsl)"$/;
/** The kinds of kernel family: the directive, the include its instances splice and the instance named STEM. */
const FAMILIES = [
  { directive: /^\/\/ #formats((?: [a-z0-9]+)+)$/, include: 'format', plain: 'fp8' },
  { directive: /^\/\/ #precisions((?: [a-z0-9]+)+)$/, include: 'precision', plain: 'f32' },
] as const;
const EACH = /^\/\/ #each ([A-Za-z0-9_ ]+):(.*)$/;
const END = /^\/\/ #end$/;

/** A kernel family's instance: its kind's include (`format`, `precision`) and the variant (`fp8`, `f16`, ...). */
export interface Variant {
  include: string;
  name: string;
}

/**
 * The kernel source with its `// #include` lines replaced (recursively; a file already spliced is skipped);
 * `// #include "format.wgsl"` / `"precision.wgsl"` become the variant's include.
 */
export function expandIncludes(file: string, src: string, variant?: Variant, seen = new Set<string>()): string {
  return src
    .split('\n')
    .map((line) => {
      const m = INCLUDE.exec(line.trim());
      if (!m) return line;
      let name = m[1]!;
      const kind = FAMILIES.find((f) => name === `${f.include}.wgsl`);
      if (kind) {
        if (variant?.include !== kind.include) throw new Error(`${file}: #include "${name}" outside a kernel family of that kind`);
        name = `${kind.include}_${variant.name}.wgsl`;
      }
      if (seen.has(name)) return `// (${name}: spliced above)`;
      seen.add(name);
      const inc = join(includeDir, name);
      if (!existsSync(inc)) throw new Error(`${file}: #include of missing shaders/include/${name}`);
      return expandIncludes(name, expandEach(name, readFileSync(inc, 'utf8').replace(/\n$/, '')), variant, seen);
    })
    .join('\n');
}

/** `// #each` blocks written out once per tuple. */
export function expandEach(file: string, src: string): string {
  const out: string[] = [];
  const lines = src.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const m = EACH.exec(lines[i]!.trim());
    if (!m) {
      if (END.test(lines[i]!.trim())) throw new Error(`${file}:${i + 1}: // #end without // #each`);
      out.push(lines[i]!);
      continue;
    }
    const names = m[1]!.trim().split(/\s+/);
    const tuples = m[2]!.split(';').map((t) => t.trim().split(/\s+/));
    const end = lines.findIndex((l, j) => j > i && END.test(l.trim()));
    if (end < 0) throw new Error(`${file}:${i + 1}: // #each without // #end`);
    const body = lines.slice(i + 1, end).join('\n');
    for (const t of tuples) {
      if (t.length !== names.length) throw new Error(`${file}:${i + 1}: // #each tuple '${t.join(' ')}' does not match '${names.join(' ')}'`);
      // longest names first, so $SUFFIX is not read as $SUF + FIX
      const order = names.map((n, k) => [n, t[k]!] as const).sort((a, b) => b[0].length - a[0].length);
      let text = body;
      for (const [n, v] of order) text = text.split('$' + n).join(v);
      out.push(text);
    }
    i = end;
  }
  return out.join('\n');
}

/** The kernels of one .wgsl file: [name, source] per variant of a family, else the file itself. */
export function kernelsOf(file: string, src: string): Array<[string, string]> {
  const stem = file.replace(/\.wgsl$/, '');
  const lines = src.split('\n').map((l) => l.trim());
  const found = FAMILIES.flatMap((f) => lines.map((l) => f.directive.exec(l)).filter((m) => m).map((m) => ({ f, names: m![1]!.trim().split(' ') })));
  if (found.length > 1) throw new Error(`${file}: more than one family line (// #formats, // #precisions)`);
  if (!found.length) return [[stem, expandIncludes(file, expandEach(file, src))]];
  const { f, names } = found[0]!;
  return names.map((n) => [n === f.plain ? stem : `${stem}_${n}`, expandIncludes(file, expandEach(file, src), { include: f.include, name: n })]);
}

function module(dirs: string[], exportName: string, comment: string, register = false): string {
  const kernels: Array<[string, string]> = [];
  for (const dir of dirs) {
    const abs = join(shaderDir, dir);
    if (!existsSync(abs)) continue;
    for (const f of readdirSync(abs).filter((n) => n.endsWith('.wgsl')).sort()) {
      kernels.push(...kernelsOf(join(dir, f), readFileSync(join(abs, f), 'utf8')).map(([n, s]): [string, string] => [n.replace(/^.*\//, ''), s]));
    }
  }
  kernels.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const names = new Set<string>();
  const lines = [
    `// Generated by scripts/embed-shaders.ts from ${comment}. Do not edit: edit the .wgsl file and run \`npm run embed-shaders\`.`,
    '/* eslint-disable */',
    ...(register ? ["import { registerShaders } from './kernels.js';", ''] : []),
    `export const ${exportName}: Readonly<Record<string, string>> = {`,
  ];
  for (const [name, src] of kernels) {
    if (names.has(name)) throw new Error(`two kernels are named '${name}'`);
    names.add(name);
    lines.push(`  ${JSON.stringify(name)}: ${JSON.stringify(src)},`);
  }
  lines.push('};', '');
  if (register) lines.push(`registerShaders(${exportName});`, '');
  return lines.join('\n');
}

export function generate(): Array<[string, string]> {
  return [
    [join(root, 'src', 'gpu', 'shaders.gen.ts'), module(['.'], 'SHADERS', 'shaders/*.wgsl')],
    [join(root, 'src', 'gpu', 'shaders-extra.gen.ts'), module(['reference', 'bench'], 'EXTRA_SHADERS', 'shaders/reference/*.wgsl and shaders/bench/*.wgsl', true)],
  ];
}

const outputs = generate();
if (process.argv.includes('--check')) {
  for (const [file, text] of outputs) {
    const current = existsSync(file) ? readFileSync(file, 'utf8') : '';
    if (current !== text) {
      console.error(`${file.slice(root.length + 1)} is stale: run \`npm run embed-shaders\``);
      process.exit(1);
    }
  }
} else {
  for (const [file, text] of outputs) if (!existsSync(file) || readFileSync(file, 'utf8') !== text) writeFileSync(file, text);
}
