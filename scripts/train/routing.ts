/**
 * Step 6: routing statistics of a checkpoint on text files, from webmoe's CPU reference (the experts it selects
 * are the ones the GPU engine selects: the reference is the oracle of the router kernel).
 *
 *   npx tsx scripts/train/routing.ts --model models/demo --text .train/eval [--ctx N] [--trace FILE]
 *
 * Each file is tokenised on its own with BOS first and run in consecutive windows of ctx tokens (default
 * max_position_embeddings), each from position 0, so every token is routed once and the trace keeps text order.
 * Prints traceStats (src/offload/traces.ts) per MoE layer as JSON: max/mean expert load, unused experts, the
 * probability that an expert a token selected is selected again by the next token (`reuse`), the share of the most
 * used quarter of the experts. --trace writes the webmoe-routing/1 trace the offload simulator replays.
 */
import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { readTexts } from '../../src/cli/eval.js';
import { TokenizerError } from '../../src/errors.js';
import { loadTokenizer } from '../../src/text/load-tokenizer.js';
import { loadCpuWeights } from '../../src/model/cpu-weights.js';
import { folderFiles, openCheckpointDir } from '../../src/model/node-checkpoint.js';
import { referenceForward } from '../../src/model/reference.js';
import { tapNames, type TapMap } from '../../src/model/taps.js';
import { serializeTrace, traceStats, type RoutingTrace } from '../../src/offload/traces.js';

const { values } = parseArgs({ options: { model: { type: 'string' }, text: { type: 'string' }, ctx: { type: 'string' }, trace: { type: 'string' } } });
if (!values.model || !values.text) {
  process.stderr.write('usage: npx tsx scripts/train/routing.ts --model DIR --text FILE|DIR [--ctx N] [--trace FILE]\n');
  process.exit(2);
}
const ckpt = await openCheckpointDir(values.model);
const c = ckpt.config;
const tok = await loadTokenizer(folderFiles(values.model), { tokenizerJson: ckpt.tokenizerJson });
if (!tok) throw new TokenizerError(`${values.model} has no tokenizer (tokenizer.json): routing stats read text`);
const weights = await loadCpuWeights(ckpt);
await ckpt.close();
const ctx = values.ctx ? Number(values.ctx) : c.max_position_embeddings;
const moeLayers = c.derived.moeLayers.flatMap((m, i) => (m ? [i] : []));
const K = c.num_experts_per_tok;
const trace: RoutingTrace = { experts: c.n_routed_experts, topK: K, layers: moeLayers, tokens: [] };
const bos = tok.bosTokenId ?? c.bos_token_id ?? undefined;
const started = Date.now();
for (const { name, text } of await readTexts(values.text)) {
  const ids = [...(bos === undefined ? [] : [bos]), ...tok.encode(text)];
  for (let s = 0; s < ids.length; s += ctx) {
    const taps: TapMap = new Map();
    const w = ids.slice(s, s + ctx);
    referenceForward(weights, w, { taps });
    const per = moeLayers.map((i) => taps.get(tapNames.moeTopkIdx(i))!.data as Int32Array); // [T, K] each
    for (let t = 0; t < w.length; t++) trace.tokens.push(per.map((d) => Array.from(d.subarray(t * K, (t + 1) * K))));
  }
  process.stderr.write(`routing: ${name}: ${ids.length} tokens (${((Date.now() - started) / 1000).toFixed(0)} s)\n`);
}
if (values.trace) await writeFile(values.trace, serializeTrace(trace) + '\n');
process.stdout.write(JSON.stringify({ tokens: trace.tokens.length, experts: trace.experts, topK: K, stats: traceStats(trace) }) + '\n');
