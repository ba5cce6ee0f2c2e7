#!/usr/bin/env bash
# Removes droverd: stops and disables the unit, removes it, the package (/usr/lib/drover) and the
# droverd command (/usr/local/sbin/droverd, when install.sh installed it).
# Keeps the configuration (/etc/drover) and the state (/var/lib/drover: releases, credentials,
# journal) unless --purge, which also removes them and the drover user (not under --root: a staged
# tree has no users). The agent stops with droverd (it runs inside the unit). It says what it
# removed, and only that. See docs/install.md.
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
[[ -z "$root" || -d "$root" ]] || { echo "uninstall.sh: --root $root: not a directory" >&2; exit 2; }

removed=0
# Removes PATH (a file, a symlink or a tree) if it exists, and says so.
remove() { # PATH WHAT
  if [[ -e "$1" || -L "$1" ]]; then rm -rf -- "$1"; removed=1; say "removed: $2 ($1)"; fi
}

if [[ -z "$root" && -d /run/systemd/system ]] && systemctl list-unit-files droverd.service >/dev/null 2>&1; then
  if systemctl is-active --quiet droverd.service || systemctl is-enabled --quiet droverd.service; then
    if systemctl disable --now droverd.service; then removed=1; say "stopped and disabled: droverd.service"
    else say "could not stop and disable droverd.service (systemctl disable --now droverd failed)"; fi
  fi
fi
unit="$root/etc/systemd/system/droverd.service"
had_unit=0; [[ ! -e "$unit" ]] || had_unit=1
remove "$unit" "the unit"
if [[ $had_unit -eq 1 && -z "$root" && -d /run/systemd/system ]]; then systemctl daemon-reload || true; fi
remove "$root/usr/lib/drover" "the package"
remove "$root/usr/lib/tmpfiles.d/drover.conf" "the agent's directory for systemd-tmpfiles"
# The droverd command, only if it is the one install.sh wrote (never a file of the same name of yours).
cli="$root/usr/local/sbin/droverd"
if [[ -f "$cli" ]] && grep -qF "Installed by drover's systemd/install.sh" "$cli"; then remove "$cli" "the droverd command"
elif [[ -e "$cli" || -L "$cli" ]]; then say "kept: $cli (not installed by drover's install.sh)"; fi

if [[ $purge -eq 1 ]]; then
  remove "$root/etc/drover" "the configuration"
  remove "$root/var/lib/drover" "the state: releases, credentials, journal"
  # Created by the unit's LogsDirectory= up to drover 0.x (decision 0029); nothing writes there.
  remove "$root/var/log/drover" "the old logs directory"
  if [[ -n "$root" ]]; then say "not touched: system users (under --root, install.sh creates none)"
  elif getent passwd drover >/dev/null; then
    if userdel drover; then removed=1; say "removed: the system user drover"
    else say "could not remove the system user drover (userdel drover failed)"; fi
  fi
else
  for kept in "$root/etc/drover" "$root/var/lib/drover"; do
    [[ ! -e "$kept" ]] || say "kept: $kept (pass --purge to remove it)"
  done
fi
[[ $removed -eq 1 ]] || say "nothing to remove: droverd is not installed${root:+ under $root}"
