#!/usr/bin/env bash
# Mesa's lavapipe (Vulkan on the CPU) from Debian bookworm-backports (Mesa 25): Dawn's WebGPU needs
# Vulkan features that bookworm's own Mesa 22.3 lacks. With it, machines without a GPU get a
# software WebGPU adapter, and the tests of the WGSL kernels run there too.
# Uses a private apt source list and state, so the machine's apt configuration is left as it is.
set -euo pipefail
installed=$(dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null || true)
if [[ "${installed%%.*}" =~ ^[0-9]+$ ]] && (( ${installed%%.*} >= 24 )) && [[ -z "${FORCE:-}" ]]; then
  echo "lavapipe: mesa-vulkan-drivers $installed already installed"
  exit 0
fi
state=$(mktemp -d)
chmod 755 "$state"
trap 'rm -rf "$state"' EXIT
cat > "$state/sources.list" <<'LIST'
deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
deb http://deb.debian.org/debian bookworm-backports main
LIST
mkdir -p "$state/lists/partial"
options=(-o "Dir::Etc::SourceList=$state/sources.list" -o Dir::Etc::SourceParts=/dev/null -o "Dir::State::Lists=$state/lists")
apt-get "${options[@]}" update -qq
DEBIAN_FRONTEND=noninteractive apt-get "${options[@]}" install -y -qq --no-install-recommends -t bookworm-backports mesa-vulkan-drivers libvulkan1 >/dev/null
echo "lavapipe: mesa-vulkan-drivers $(dpkg-query -W -f='${Version}' mesa-vulkan-drivers) installed"
