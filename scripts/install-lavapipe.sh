#!/usr/bin/env bash
# Mesa's lavapipe (Vulkan on the CPU) from Debian bookworm-backports (Mesa 25): Dawn's WebGPU needs
# Vulkan features that bookworm's own Mesa 22.3 lacks. With it, machines without a GPU get a
# software WebGPU adapter, and the tests of the WGSL kernels run there too.
# Uses a private apt source list and state, so the machine's apt configuration is left as it is.
# The archive is the one the machine's own apt sources name (the mirror it is set up to use).
set -euo pipefail
installed=$(dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null || true)
if [[ "${installed%%.*}" =~ ^[0-9]+$ ]] && (( ${installed%%.*} >= 24 )) && [[ -z "${FORCE:-}" ]]; then
  echo "lavapipe: mesa-vulkan-drivers $installed already installed"
  exit 0
fi

# "URI SUITE" for every deb source of the machine, from one-line lists and deb822 .sources files.
apt_sources() {
  local file
  for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f "$file" ]] || continue
    # deb [options] URI SUITE COMPONENTS…
    sed -E 's/\[[^]]*\]//' "$file" | awk '$1 == "deb" { print $2, $3 }'
  done
  for file in /etc/apt/sources.list.d/*.sources; do
    [[ -f "$file" ]] || continue
    awk 'BEGIN { RS = ""; FS = "\n" }
      { uris = ""; suites = ""; deb = 0
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^Types:/ && $i ~ /deb([^-]|$)/) deb = 1
          if ($i ~ /^URIs:/) { uris = $i; sub(/^URIs:[ \t]*/, "", uris) }
          if ($i ~ /^Suites:/) { suites = $i; sub(/^Suites:[ \t]*/, "", suites) }
        }
        if (deb) { n = split(uris, u, " "); m = split(suites, s, " "); for (a = 1; a <= n; a++) for (b = 1; b <= m; b++) print u[a], s[b] } }' "$file"
  done
}
sources=$(apt_sources)
archive=$(awk '$2 == "bookworm" { print $1; exit }' <<<"$sources")
security=$(awk '$2 == "bookworm-security" { print $1; exit }' <<<"$sources")
if [[ -z "$archive" ]]; then
  echo "lavapipe: no apt source for Debian bookworm on this machine; cannot install Mesa from bookworm-backports" >&2
  exit 1
fi
state=$(mktemp -d)
chmod 755 "$state"
trap 'rm -rf "$state"' EXIT
{
  echo "deb $archive bookworm main"
  echo "deb $archive bookworm-updates main"
  echo "deb $archive bookworm-backports main"
  [[ -n "$security" ]] && echo "deb $security bookworm-security main"
} > "$state/sources.list"
mkdir -p "$state/lists/partial"
options=(-o "Dir::Etc::SourceList=$state/sources.list" -o Dir::Etc::SourceParts=/dev/null -o "Dir::State::Lists=$state/lists")
apt-get "${options[@]}" update -qq
DEBIAN_FRONTEND=noninteractive apt-get "${options[@]}" install -y -qq --no-install-recommends -t bookworm-backports mesa-vulkan-drivers libvulkan1 >/dev/null
echo "lavapipe: mesa-vulkan-drivers $(dpkg-query -W -f='${Version}' mesa-vulkan-drivers) installed"
