#!/usr/bin/env bash
# Installs the system packages webmoe needs for WebGPU on a Linux machine with no GPU:
#   - Mesa lavapipe (Vulkan on the CPU) from bookworm-backports: shader-f16, subgroups, 128 MiB bindings
#   - Debian's chromium: SwiftShader (Vulkan on the CPU, 1 GiB bindings) and the browser for web tests
#   - libvulkan1 (the Vulkan loader Dawn opens)
#   - bubblewrap (bwrap): the sandbox the agent's run_command runs in
# Idempotent: does nothing when everything is present. Needs root (or sudo) to install.
# See docs/webgpu-on-linux.md §1 and §3 for why backports Mesa (Debian 12's Mesa 22.3 gives Dawn no adapter).
set -euo pipefail

LVP_ICD=/usr/share/vulkan/icd.d/lvp_icd.json
SWS_ICD=/usr/lib/chromium/vk_swiftshader_icd.json

have_all() {
  [ -f "$LVP_ICD" ] && [ -f "$SWS_ICD" ] && [ -x /usr/bin/chromium ] && [ -x /usr/bin/bwrap ] && ldconfig -p 2>/dev/null | grep -q libvulkan.so.1
}

if [ "$(uname -s)" != "Linux" ]; then
  echo "webmoe: not Linux; using the platform's own WebGPU adapter" >&2
  exit 0
fi
if have_all; then
  exit 0
fi
if ! [ -r /etc/debian_version ]; then
  echo "webmoe: no software Vulkan driver found and this is not Debian; install Mesa lavapipe (>= 23) and point VK_ICD_FILENAMES at lvp_icd.json" >&2
  exit 0
fi

SUDO=""
if [ "$(id -u)" != "0" ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo"
  else
    echo "webmoe: the software WebGPU drivers are missing. Run this once as root, then retry:" >&2
    echo "  sudo bash $(cd "$(dirname "$0")" && pwd)/install-deps.sh" >&2
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
if [ "$codename" = "bookworm" ] && ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
  echo "deb http://deb.debian.org/debian bookworm-backports main" | $SUDO tee /etc/apt/sources.list.d/webmoe-backports.list >/dev/null
fi
echo "webmoe: installing Vulkan software drivers (lavapipe, SwiftShader via chromium)..." >&2
$SUDO apt-get update -qq >&2
if [ "$codename" = "bookworm" ]; then
  $SUDO apt-get install -y -qq -t bookworm-backports mesa-vulkan-drivers >&2
else
  $SUDO apt-get install -y -qq mesa-vulkan-drivers >&2
fi
$SUDO apt-get install -y -qq --no-install-recommends libvulkan1 chromium fonts-dejavu-core bubblewrap >&2
echo "webmoe: drivers installed" >&2
