#!/usr/bin/env bash
# Installs what Cairn needs on Debian/Ubuntu when it is missing: the three C libraries,
# pkg-config, git, procps and util-linux (setpriv and unshare isolate trainers), gpgv (OpenPGP
# commit signatures; gnupg and openssh-client make the tests' signed commits), and Python's
# jsonschema for the schema tests, pre-commit for the hook tests, promtool for the metrics test.
# Safe to run again.
set -euo pipefail
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
need=()
for pkg in libgit2-dev libyaml-dev libsqlite3-dev pkg-config git python3 procps util-linux gpgv gnupg openssh-client; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
updated=""
apt_install() {
  [ -n "$updated" ] || { $sudo apt-get update -qq; updated=1; }
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}
if ((${#need[@]})); then
  echo "installing: ${need[*]}" >&2
  apt_install "${need[@]}"
fi
# The python3 on PATH may not be Debian's (pyenv, venv): ask it directly.
if ! python3 -c "import jsonschema" 2>/dev/null; then
  echo "installing: jsonschema for $(command -v python3)" >&2
  python3 -m pip install --quiet jsonschema 2>/dev/null || apt_install python3-jsonschema
fi
# The metrics test lints /metrics with promtool (Debian's prometheus package; its server is not needed).
if ! command -v promtool >/dev/null; then
  echo "installing: prometheus (for promtool)" >&2
  apt_install --no-install-recommends prometheus
fi
# The hook tests run the real pre-commit framework.
if ! command -v pre-commit >/dev/null; then
  echo "installing: pre-commit for $(command -v python3)" >&2
  python3 -m pip install --quiet pre-commit 2>/dev/null || apt_install pre-commit
  if command -v pyenv >/dev/null; then pyenv rehash; fi
fi
if ! command -v swift >/dev/null; then
  echo "swift is not on PATH: install the Swift 6 toolchain (swift.org) first" >&2
  exit 1
fi
