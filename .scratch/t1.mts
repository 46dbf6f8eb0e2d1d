import { openCheckpointDir } from '../src/model/node-checkpoint.js';
for (const n of ['tiny','small','ragged','yarn']) {
  const c = await openCheckpointDir('/work/shared/golden/' + n);
  console.log(n, c.tensors.size, c.weights.length, c.ignored, c.unexpected);
  const first = [...c.tensors.values()].sort((a,b)=>a.offset-b.offset).slice(0,5).map(t=>[t.name,t.dtype,t.offset]);
  console.log(first);
  await c.close();
}
