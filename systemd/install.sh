#!/usr/bin/env bash
# Installs droverd on a host: the drover system user, the directories, the package (the launcher,
# the droverd bundle and the droverd command, /usr/local/sbin/droverd), optionally droverd.json,
# trust.json and a first agent release, then the systemd unit, enabled and started. Idempotent: run it again to repair or to add what was left
# out; it never replaces droverd.json, trust.json or an agent, nor a droverd that has since
# updated itself (unless --force-daemon). See docs/install.md.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bundle="$here/../daemon/dist/bundle/droverd.mjs"
launcher="$here/../daemon/dist/bundle/launcher.mjs"
unit_src="$here/droverd.service"
cli_src="$here/droverd-cli.sh"
cli_marker="Installed by drover's systemd/install.sh"
version=""
manager="" manager_key="" token="" token_file="" tofu=0 trust="" agent="" agent_release=""
root="" start=1 force_daemon=0

usage() {
  cat <<USAGE
Usage: install.sh [options]

  --bundle FILE          droverd single-file bundle (default: daemon/dist/bundle/droverd.mjs;
                         build it with: node daemon/scripts/bundle.js)
  --launcher FILE        the launcher bundle (default: daemon/dist/bundle/launcher.mjs)
  --version V            the bundle's version (default: what \`node BUNDLE --version\` prints)
  --manager URL          write /etc/drover/droverd.json (if absent) for this manager ...
  --manager-key KEY      ... pinning its public key (recommended), or
  --tofu                 ... trusting the key it presents at enrollment
  --token-file FILE      ... with the enrollment token in FILE (droverd enrolls at its first
                         start); or set \$DROVER_ENROLLMENT_TOKEN. The token is written only into
                         droverd.json (mode 0600), never printed
  --token TOKEN          ... the same, but TOKEN shows in ps and in shell history: prefer the two
                         above (kept for compatibility)
  --trust FILE           install FILE as the release trust policy (trust.json), if none is installed
  --agent FILE --agent-release FILE.release.json
                         install a first agent release (verified against trust.json), if none is
  --root DIR             install under DIR instead of / (image builds, tests): no user, no systemctl
  --no-start             do not enable and start the service
  --force-daemon         make this bundle current even if droverd updated itself since
  -h, --help             this help
USAGE
}

while (($# > 0)); do
  case "$1" in
    --bundle|--launcher|--version|--manager|--manager-key|--token|--token-file|--trust|--agent|--agent-release|--root)
      [[ -n "${2:-}" ]] || { echo "install.sh: $1 needs a value (see --help)" >&2; exit 2; } ;;
  esac
  case "$1" in
    --bundle) bundle="$2"; shift 2 ;;
    --launcher) launcher="$2"; shift 2 ;;
    --version) version="$2"; shift 2 ;;
    --manager) manager="$2"; shift 2 ;;
    --manager-key) manager_key="$2"; shift 2 ;;
    --token) token="$2"; shift 2 ;;
    --token-file) token_file="$2"; shift 2 ;;
    --tofu) tofu=1; shift ;;
    --trust) trust="$2"; shift 2 ;;
    --agent) agent="$2"; shift 2 ;;
    --agent-release) agent_release="$2"; shift 2 ;;
    --root) root="$2"; shift 2 ;;
    --no-start) start=0; shift ;;
    --force-daemon) force_daemon=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

say() { printf 'install.sh: %s\n' "$*"; }
die() { printf 'install.sh: error: %s\n' "$*" >&2; exit 1; }
usage_error() { printf 'install.sh: error: %s\n' "$*" >&2; exit 2; }

# The enrollment token: --token-file FILE, --token TOKEN, else $DROVER_ENROLLMENT_TOKEN. It is never
# printed: it goes into droverd.json (step 4) through node's environment, not a command line.
token_from="--token"
if [[ -n "$token_file" ]]; then
  [[ -z "$token" ]] || usage_error "give the enrollment token once: --token-file or --token, not both"
  token_from="--token-file $token_file"
  # cat, not a test of the path: FILE may be a pipe (--token-file <(...)). $(...) drops the final newlines.
  token="$(cat -- "$token_file" 2>/dev/null)" || usage_error "cannot read the enrollment token file $token_file"
elif [[ -z "$token" && -n "${DROVER_ENROLLMENT_TOKEN:-}" ]]; then
  token="$DROVER_ENROLLMENT_TOKEN"
  token_from="\$DROVER_ENROLLMENT_TOKEN"
fi
token="${token%"${token##*[![:space:]]}"}"  # trailing blanks and a CR (a file edited on Windows)
if [[ -n "$token_file" && -z "$token" ]]; then usage_error "the enrollment token file $token_file is empty"; fi
if [[ "$token" =~ [[:space:][:cntrl:]] ]]; then usage_error "the enrollment token ($token_from) must be the token alone, on one line (it holds a space or a control character)"; fi

[[ -n "$root" ]] || [[ $(id -u) -eq 0 ]] || die "run as root (droverd is a system service), or pass --root DIR"
[[ -f "$bundle" ]] || die "no droverd bundle at $bundle; build it with: node daemon/scripts/bundle.js"
[[ -f "$launcher" ]] || die "no launcher bundle at $launcher; build it with: node daemon/scripts/bundle.js"
[[ -f "$unit_src" ]] || die "no unit file at $unit_src"
[[ -f "$cli_src" ]] || die "no droverd command at $cli_src"
if [[ -n "$agent" || -n "$agent_release" ]] && [[ -z "$agent" || -z "$agent_release" ]]; then die "--agent and --agent-release go together"; fi

node_bin="$(command -v node)" || die "Node.js >= 20.18 is required (node is not on PATH)"
# The unit and the root-run droverd command hard-code this path: it must be absolute, and (on a real
# install) no one but root may be able to change it or any directory above it, or whoever can
# would run code as root. A node under a user's nvm directory is refused for that reason.
node_bin="$(readlink -f -- "$node_bin")" || die "cannot resolve the path of node"
[[ "$node_bin" == /* && "$node_bin" =~ ^[A-Za-z0-9._+/-]+$ ]] ||
  die "node resolves to $node_bin: install.sh needs an absolute path of letters, digits and . _ + - / (e.g. /usr/bin/node)"
# Fails, saying why, when $1 or a directory above it is not root's alone.
root_only_path() {
  local path="$1" owner mode
  while :; do
    if ! owner="$(stat -c %u -- "$path")" || ! mode="$(stat -c %a -- "$path")"; then printf 'cannot stat %s\n' "$path"; return 1; fi
    [[ "$owner" == 0 ]] || { printf '%s is owned by uid %s, not root\n' "$path" "$owner"; return 1; }
    # No exception for a sticky directory such as /tmp: a cleaner (tmpfiles, a reboot) removes root's
    # entry there sooner or later, and then anyone may create the same path with their own node.
    (( (8#$mode & 8#022) == 0 )) || { printf '%s is writable by its group or by others (mode %s)\n' "$path" "$mode"; return 1; }
    [[ "$path" == / ]] && return 0
    path="$(dirname -- "$path")"
  done
}
# As root (a real install, or an image staged by root), the node the unit will run must be root's alone.
if [[ $(id -u) -eq 0 ]]; then
  why="$(root_only_path "$node_bin")" ||
    die "node at $node_bin is not safe to run as root: $why. Install Node.js system-wide (e.g. /usr/bin/node from your distribution or NodeSource)."
fi
"$node_bin" -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=18)?0:1)' ||
  die "Node.js >= 20.18 is required; $node_bin is $("$node_bin" --version)"
[[ -n "$version" ]] || version="$("$node_bin" "$bundle" --version)"

lib="$root/usr/lib/drover"
etc="$root/etc/drover"
state="$root/var/lib/drover"
logs="$root/var/log/drover"
unit_dir="$root/etc/systemd/system"
sbin="$root/usr/local/sbin"

# droverd's CLI, run from the package's bundle against this host's directories.
droverd() { CONFIGURATION_DIRECTORY="$etc" STATE_DIRECTORY="$state" LOGS_DIRECTORY="$logs" "$node_bin" "$bundle" "$@"; }

# 1. The user: droverd runs as root (it supervises an agent that may need it); the drover system
#    user is reserved for running agents unprivileged and for group-readable logs.
if [[ -z "$root" ]]; then
  if getent passwd drover >/dev/null; then say "user drover exists"
  else useradd --system --user-group --no-create-home --home-dir /var/lib/drover --shell /usr/sbin/nologin drover; say "created system user drover"; fi
fi

# 2. Directories (systemd also creates the last three, with the same modes, from the unit).
install -d -m 0755 "$lib" "$etc" "$etc/agent" "$unit_dir"
install -d -m 0700 "$state"
install -d -m 0750 "$logs"

# 3. The package: the launcher (installed here once, never replaced by droverd itself) and the
#    droverd bundle, which becomes current/daemon unless droverd has updated itself since.
install -m 0644 "$launcher" "$lib/launcher.mjs"
install -m 0644 "$bundle" "$lib/droverd-$version.mjs"
if [[ -L "$state/current/daemon" && $force_daemon -eq 0 ]]; then
  say "droverd $(basename "$(readlink "$state/current/daemon")") is installed; kept (pass --force-daemon to make $version current)"
else
  droverd install --artifact daemon --unsigned --version "$version" "$lib/droverd-$version.mjs" >/dev/null
  say "droverd $version installed as current/daemon"
fi
# The droverd command (droverd status, verify, ...): runs current/daemon with node and the unit's
# directories, not through the launcher (a command is no boot of a pending self-update).
[[ -d "$sbin" ]] || install -d -m 0755 "$sbin"
if [[ -e "$sbin/droverd" || -L "$sbin/droverd" ]] && ! grep -qF "$cli_marker" "$sbin/droverd" 2>/dev/null; then
  say "$sbin/droverd exists and is not drover's; kept (remove it and run install.sh again for the droverd command)"
else
  # A fresh temporary name (never a fixed one another user could have planted as a symlink).
  tmp="$(mktemp "$sbin/.droverd.XXXXXX")"
  sed "s#^node='/usr/bin/node'\$#node='$node_bin'#" "$cli_src" >"$tmp"
  chmod 0755 "$tmp"
  [[ $(id -u) -ne 0 ]] || chown 0:0 "$tmp"
  mv -f "$tmp" "$sbin/droverd"
  say "installed $sbin/droverd (droverd status, droverd verify, ...; as root)"
fi

# 4. Configuration, written once: droverd never writes it, and neither does this script again.
if [[ -f "$etc/droverd.json" ]]; then
  if [[ -n "$token" ]]; then say "$etc/droverd.json exists; kept (the enrollment token given was not written)"
  else say "$etc/droverd.json exists; kept"; fi
elif [[ -n "$manager" ]]; then
  [[ -n "$manager_key" || $tofu -eq 1 ]] || die "--manager needs --manager-key KEY (or, knowingly, --tofu)"
  umask 077
  MANAGER="$manager" KEY="$manager_key" TOKEN="$token" TOFU="$tofu" AGENT_DIR="/etc/drover/agent" "$node_bin" -e '
    const e = process.env;
    const manager = { url: e.MANAGER };
    if (e.KEY) manager.key = e.KEY; else manager.tofu = true;
    if (e.TOKEN) manager.enrollmentToken = e.TOKEN;
    process.stdout.write(JSON.stringify({ manager, agent: { configDir: e.AGENT_DIR } }, null, 2) + "\n");
  ' >"$etc/droverd.json"
  chmod 0600 "$etc/droverd.json"
  umask 022
  say "wrote $etc/droverd.json (mode 0600: it holds the enrollment token)"
else
  [[ -z "$token" ]] || say "the enrollment token given was not written: it goes into droverd.json, which needs --manager"
  say "no $etc/droverd.json: write one (docs/install.md), or run install.sh again with --manager URL --manager-key KEY --token-file FILE"
fi

# 5. The release trust policy: the root of trust for every agent and droverd release.
if [[ -f "$state/trust.json" ]]; then say "$state/trust.json exists; kept"
elif [[ -n "$trust" ]]; then install -m 0644 "$trust" "$state/trust.json"; say "installed the trust policy"
else say "no trust policy: install one at $state/trust.json (drover trust create), or no update will verify"; fi

# 6. A first agent release, verified like any update.
if [[ -n "$agent" ]]; then
  if [[ -L "$state/current/agent" ]]; then say "an agent is installed ($(basename "$(readlink "$state/current/agent")")); kept"
  else droverd install --release "$agent_release" "$agent" >/dev/null; say "installed the first agent release"; fi
fi

# 7. The unit, with this host's node; flags after the node path are kept.
tmp="$(mktemp "$unit_dir/.droverd.service.XXXXXX")"
sed "s#^ExecStart=/usr/bin/node #ExecStart=$node_bin #" "$unit_src" >"$tmp"
chmod 0644 "$tmp"
mv -f "$tmp" "$unit_dir/droverd.service"
say "installed $unit_dir/droverd.service"

# 8. Enable and start, only on a host booted with systemd, never under --root.
if [[ -z "$root" && $start -eq 1 && -d /run/systemd/system ]]; then
  systemctl daemon-reload
  systemctl enable --now droverd.service
  say "droverd is enabled and running (journalctl -u droverd -f); a running droverd picks up a changed unit at its next restart"
else
  say "not starting the service (--root, --no-start, or not booted with systemd)"
fi
