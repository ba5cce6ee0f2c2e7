#!/bin/sh
# droverd's command line on this host: `droverd status`, `droverd verify`, `droverd enroll`, ...
# Installed by drover's systemd/install.sh as /usr/local/sbin/droverd (install.sh rewrites it;
# uninstall.sh removes it). See docs/install.md.
#
# It runs the droverd that is current (/var/lib/drover/current/daemon: after a self-update, the new
# one) directly with node, not through the launcher: a command is not a boot, so it never counts
# against a droverd self-update that awaits its commit. It gives droverd the directories the unit
# gives it (ConfigurationDirectory=, StateDirectory=, as systemd passes them), so
# it reads the configuration and the state the service uses. `droverd run` is the service's own.
#
# DROVER_INSTALL_ROOT=DIR: work on the tree `install.sh --root DIR` staged (an image being built).
set -eu

node='/usr/bin/node'
root="${DROVER_INSTALL_ROOT:-}"
current="$root/var/lib/drover/current/daemon"

if [ "${1:-}" = run ]; then
  echo "droverd: refusing 'droverd run': the droverd service runs the daemon. Use systemctl (sudo systemctl start|restart|status droverd) and journalctl -u droverd." >&2
  exit 2
fi

if [ ! -r "$current/installed.json" ]; then
  if [ "$(id -u)" -ne 0 ] && [ -z "$root" ]; then
    echo "droverd: /var/lib/drover is root's only: run droverd as root (sudo droverd ...)." >&2
  else
    echo "droverd: no droverd release is installed at $current: install one with systemd/install.sh." >&2
  fi
  exit 1
fi

# The entry is the release's one file, named in its installed.json (as the launcher reads it).
# shellcheck disable=SC2016 # JavaScript, not shell
entry="$("$node" -e '
  const { readFileSync, realpathSync } = require("node:fs");
  const { join } = require("node:path");
  const dir = realpathSync(process.argv[1]);
  const r = JSON.parse(readFileSync(join(dir, "installed.json"), "utf8"));
  const name = r?.file?.name;
  if (r?.schema !== "drover.installed/v1" || r.artifact !== "daemon" || typeof name !== "string" || name.includes("/") || !/\.(?:m|c)?js$/.test(name)) {
    console.error(`droverd: ${dir}/installed.json does not name a droverd bundle; repair with systemd/install.sh --force-daemon.`);
    process.exit(1);
  }
  process.stdout.write(join(dir, name));
' "$current")"

CONFIGURATION_DIRECTORY="$root/etc/drover"
STATE_DIRECTORY="$root/var/lib/drover"
NODE_ENV=production
export CONFIGURATION_DIRECTORY STATE_DIRECTORY NODE_ENV
umask 077
# Here droverd runs outside the unit's sandbox. As root it still gets no capabilities (it needs none
# for root's own files under /etc/drover and /var/lib/drover) and can never gain privileges.
if [ "$(id -u)" -eq 0 ]; then
  if command -v setpriv >/dev/null 2>&1; then
    exec setpriv --no-new-privs --inh-caps=-all --bounding-set=-all -- "$node" "$entry" "$@"
  fi
  echo "droverd: setpriv (util-linux) is missing: running with root's full capabilities." >&2
fi
exec "$node" "$entry" "$@"
