#!/usr/bin/env bash
# Removes droverd: stops and disables the unit, removes it, the package (/usr/lib/drover) and the
# droverd command (/usr/local/sbin/droverd, when install.sh installed it).
# Keeps the configuration (/etc/drover), the state (/var/lib/drover: releases, credentials,
# journal) and the logs unless --purge, which also removes the drover user. The agent stops with
# droverd (it runs inside the unit). See docs/install.md.
set -euo pipefail

root="" purge=0
while (($# > 0)); do
  case "$1" in
    --purge) purge=1; shift ;;
    # An empty DIR (--root "$UNSET") would mean the live system: refused, not taken for /.
    --root) [[ -n "${2:-}" ]] || { echo "uninstall.sh: --root needs a value (see --help)" >&2; exit 2; }; root="$2"; shift 2 ;;
    -h|--help) echo "Usage: uninstall.sh [--purge] [--root DIR]"; exit 0 ;;
    *) echo "uninstall.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
say() { printf 'uninstall.sh: %s\n' "$*"; }
[[ -n "$root" ]] || [[ $(id -u) -eq 0 ]] || { echo "uninstall.sh: run as root, or pass --root DIR" >&2; exit 1; }

if [[ -z "$root" && -d /run/systemd/system ]] && systemctl list-unit-files droverd.service >/dev/null 2>&1; then
  systemctl disable --now droverd.service || true
  say "stopped and disabled droverd"
fi
rm -f "$root/etc/systemd/system/droverd.service"
if [[ -z "$root" && -d /run/systemd/system ]]; then systemctl daemon-reload || true; fi
rm -rf "$root/usr/lib/drover"
# The droverd command, only if it is the one install.sh wrote (never a file of the same name of yours).
cli="$root/usr/local/sbin/droverd"
if [[ -f "$cli" ]] && grep -qF "Installed by drover's systemd/install.sh" "$cli"; then rm -f "$cli"; fi
say "removed the unit, the package and the droverd command"

if [[ $purge -eq 1 ]]; then
  rm -rf "$root/etc/drover" "$root/var/lib/drover" "$root/var/log/drover"
  if [[ -z "$root" ]] && getent passwd drover >/dev/null; then userdel drover || true; fi
  say "purged the configuration, the state (releases, credentials, journal), the logs and the drover user"
else
  say "kept $root/etc/drover, $root/var/lib/drover and $root/var/log/drover (pass --purge to remove them)"
fi
