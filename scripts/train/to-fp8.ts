/**
 * Step 4: BF16 export -> the committed block-FP8 checkpoint (E4M3, one F32 weight_scale_inv per 128x128 block,
 * model-spec §3.4), through webmoe's own converter (src/model/convert.ts, the code behind `webmoe convert --to fp8`).
 *
 *   npx tsx scripts/train/to-fp8.ts .train/bf16 models/demo
 */
import { mkdirSync } from 'node:fs';
import { nodeFolder } from '../../src/format/node-writer.js';
import { convertCheckpoint } from '../../src/model/convert.js';
import { folderFiles } from '../../src/model/node-checkpoint.js';

const [input, output] = process.argv.slice(2);
if (!input || !output) {
  process.stderr.write('usage: npx tsx scripts/train/to-fp8.ts BF16_DIR OUT_DIR\n');
  process.exit(2);
}
mkdirSync(output, { recursive: true });
const info = await convertCheckpoint(folderFiles(input), 'fp8', await nodeFolder(output));
process.stdout.write(`to-fp8: ${info.files.join(', ')}: ${(info.tensorBytes / 2 ** 20).toFixed(2)} MiB of tensors (${info.converted} converted, ${info.copied} copied)\n`);
