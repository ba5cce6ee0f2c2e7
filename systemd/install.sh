#!/usr/bin/env bash
# Installs droverd on a host: the drover system user, the directories, the package (the launcher,
# the droverd bundle and the droverd command, /usr/local/sbin/droverd), optionally droverd.json,
# trust.json and a first agent release, then the systemd unit, enabled and started.
# It checks every option and prerequisite before it writes anything: a refused run changes nothing.
# Idempotent: run it again to repair or to add what was left out; it says what it changed
# ("installed: ...", "created: ...") and what it found as it should be ("unchanged: ..."). It never
# replaces droverd.json, trust.json or an agent, nor a droverd that has since updated itself (unless
# --force-daemon). See docs/install.md.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bundle="$here/../daemon/dist/bundle/droverd.mjs"
launcher="$here/../daemon/dist/bundle/launcher.mjs"
unit_src="$here/droverd.service"
cli_src="$here/droverd-cli.sh"
doc_src="$here/../docs/install.md"
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

# ---------------------------------------------------------------------------------------------------
# Checks. Nothing below writes anything until "Changes": every option and every prerequisite is
# checked first, so a refused run leaves the host (or the --root tree) exactly as it was.
# ---------------------------------------------------------------------------------------------------

# A file given as an option: present, a regular file (or a pipe), readable.
readable_file() { # OPTION FILE
  [[ -e "$2" ]] || usage_error "$1 $2: no such file"
  [[ -f "$2" || -p "$2" ]] || usage_error "$1 $2: not a regular file"
  [[ -r "$2" ]] || usage_error "$1 $2: not readable"
}
if [[ -n "$root" ]]; then
  if [[ -e "$root" ]]; then [[ -d "$root" ]] || usage_error "--root $root: not a directory"
  else [[ -d "$(dirname -- "$root")" ]] || usage_error "--root $root: neither it nor its parent directory exists"; fi
fi
if [[ -n "$manager" ]]; then
  [[ -n "$manager_key" || $tofu -eq 1 ]] || usage_error "--manager needs --manager-key KEY (or, knowingly, --tofu)"
  [[ -z "$manager_key" || $tofu -eq 0 ]] || usage_error "give --manager-key KEY or --tofu, not both"
else
  [[ -z "$manager_key" ]] || usage_error "--manager-key goes with --manager URL"
  [[ $tofu -eq 0 ]] || usage_error "--tofu goes with --manager URL"
fi
if [[ -n "$agent" || -n "$agent_release" ]] && [[ -z "$agent" || -z "$agent_release" ]]; then usage_error "--agent and --agent-release go together"; fi
[[ -z "$trust" ]] || readable_file --trust "$trust"
[[ -z "$agent" ]] || readable_file --agent "$agent"
[[ -z "$agent_release" ]] || readable_file --agent-release "$agent_release"
[[ -f "$bundle" ]] || die "no droverd bundle at $bundle; build it with: node daemon/scripts/bundle.js"
[[ -f "$launcher" ]] || die "no launcher bundle at $launcher; build it with: node daemon/scripts/bundle.js"
[[ -f "$unit_src" ]] || die "no unit file at $unit_src"
[[ -f "$cli_src" ]] || die "no droverd command at $cli_src"
[[ -f "$doc_src" ]] || die "no $doc_src (the unit's Documentation=)"

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
[[ -n "$version" ]] || version="$("$node_bin" "$bundle" --version)" || die "$bundle does not run with $node_bin (node $bundle --version failed)"
[[ "$version" =~ ^[0-9A-Za-z.+-]+$ ]] || usage_error "--version $version: not a version (e.g. 1.2.3)"
# The tools the changes need (coreutils, diffutils, sed), and on the live system getent, useradd, systemctl.
missing=()
for tool in cmp stat mktemp install sed readlink basename dirname; do command -v "$tool" >/dev/null || missing+=("$tool"); done
[[ -n "$root" ]] || command -v getent >/dev/null || missing+=(getent)
((${#missing[@]} == 0)) || die "missing tools: ${missing[*]} (coreutils, diffutils, sed, libc-bin)"
booted=0
if [[ -z "$root" ]]; then
  if ! getent passwd drover >/dev/null; then command -v useradd >/dev/null || die "useradd is missing: it creates the drover system user"; fi
  if [[ $start -eq 1 && -d /run/systemd/system ]]; then
    command -v systemctl >/dev/null || die "systemctl is missing on a host booted with systemd"
    booted=1
  fi
fi

lib="$root/usr/lib/drover"
etc="$root/etc/drover"
state="$root/var/lib/drover"
unit_dir="$root/etc/systemd/system"
sbin="$root/usr/local/sbin"

# droverd's CLI, run from the package's bundle against this host's directories (or others, given as options).
droverd() { CONFIGURATION_DIRECTORY="$etc" STATE_DIRECTORY="$state" "$node_bin" "$bundle" "$@"; }

# A scratch directory outside the target tree, for the checks and for files assembled before they
# are compared with what is installed.
scratch="$(mktemp -d "${TMPDIR:-/tmp}/drover-install.XXXXXX")"
trap 'rm -rf -- "$scratch"' EXIT
# The files given are read once, here, into the scratch directory: what is checked below is what is
# installed (a file changed in between, or a pipe, cannot make them differ).
given() { # OPTION VARIABLE
  local file="${!2}" copy="$scratch/given/$2"
  mkdir -p -- "$copy"
  copy="$copy/$(basename -- "$file")"
  cat -- "$file" >"$copy" 2>/dev/null || usage_error "$1 $file: cannot be read"
  printf -v "$2" '%s' "$copy"
}
[[ -z "$trust" ]] || given --trust trust
[[ -z "$agent" ]] || given --agent agent
[[ -z "$agent_release" ]] || given --agent-release agent_release

# The droverd.json the --manager options make, checked by droverd itself (the URL, the manager key),
# even when an installed droverd.json is kept: a wrong option is refused either way.
write_config=0
[[ -z "$manager" || -f "$etc/droverd.json" ]] || write_config=1
if [[ -n "$manager" ]]; then
  (umask 077
   MANAGER="$manager" KEY="$manager_key" TOKEN="$token" TOFU="$tofu" AGENT_DIR="/etc/drover/agent" "$node_bin" -e '
    const e = process.env;
    const manager = { url: e.MANAGER };
    if (e.KEY) manager.key = e.KEY; else manager.tofu = true;
    if (e.TOKEN) manager.enrollmentToken = e.TOKEN;
    process.stdout.write(JSON.stringify({ manager, agent: { configDir: e.AGENT_DIR, user: "drover" } }, null, 2) + "\n");
  ' >"$scratch/droverd.json")
fi
if [[ -n "$manager" || -n "$trust" ]]; then
  check=(check-config --config "$scratch/empty.json")
  [[ -z "$manager" ]] || check=(check-config --config "$scratch/droverd.json")
  [[ -n "$manager" ]] || printf '{}\n' >"$scratch/empty.json"
  [[ -z "$trust" ]] || check+=(--trust "$trust")
  if ! why="$(droverd "${check[@]}" 2>&1 >/dev/null)"; then
    why="${why#droverd: }"; why="${why//"$scratch/droverd.json: "/}"; why="${why% Fix the file and start droverd again.}"
    [[ -n "$manager" && "$why" != TRUST_POLICY_* ]] && why="the droverd.json of --manager/--manager-key/--tofu/the token is refused: $why"
    usage_error "$why"
  fi
fi
# The daemon bundle, and a first agent release, installed into a scratch state directory exactly as
# they will be installed below: a version droverd refuses, or a release that does not verify against
# the trust policy, is refused now.
install_agent=0
[[ -z "$agent" || -L "$state/current/agent" ]] || install_agent=1
mkdir -m 0700 "$scratch/state"
why="$(droverd install --state-dir "$scratch/state" --artifact daemon --unsigned --version "$version" "$bundle" 2>&1 >/dev/null)" || die "the droverd bundle $bundle: ${why#droverd: }"
agent_name="$(basename -- "$agent")"
if [[ $install_agent -eq 1 ]]; then
  policy="$trust"
  [[ -n "$policy" || ! -f "$state/trust.json" ]] || policy="$state/trust.json"
  [[ -n "$policy" ]] || usage_error "--agent needs a trust policy to verify it against: pass --trust FILE (none is installed at $state/trust.json)"
  cp -- "$policy" "$scratch/state/trust.json"
  why="$(droverd install --state-dir "$scratch/state" --release "$agent_release" "$agent" 2>&1 >/dev/null)" || die "the agent release $agent_name: ${why#droverd: }"
fi

# droverd install, below, needs the state directory droverd holds while it runs: refuse now, not half-way.
install_daemon=0
current_daemon=""
[[ ! -L "$state/current/daemon" ]] || current_daemon="$(basename "$(readlink "$state/current/daemon")")"
[[ "$current_daemon" == "$version" || ( -n "$current_daemon" && $force_daemon -eq 0 ) ]] || install_daemon=1
if [[ ( $install_daemon -eq 1 || $install_agent -eq 1 ) && -d "$state" ]]; then
  running="$(droverd status --json 2>/dev/null | "$node_bin" -e 'let t="";process.stdin.on("data",(c)=>t+=c).on("end",()=>{try{process.stdout.write(String(JSON.parse(t).daemon.running===true))}catch{process.stdout.write("unknown")}})')"
  [[ "$running" != true ]] || die "droverd is running on $state: stop it first (systemctl stop droverd), then run install.sh again; it starts droverd again"
fi

# ---------------------------------------------------------------------------------------------------
# Changes. Each step says what it did: "installed", "created", "updated", or "unchanged".
# ---------------------------------------------------------------------------------------------------
changed=0
did() { changed=1; say "$@"; }

# Installs SRC as DEST with MODE unless DEST already has those bytes and that mode. Prints what it did.
put_file() { # SRC DEST MODE WHAT
  local src="$1" dest="$2" mode="$3" what="$4" tmp
  if [[ -f "$dest" && ! -L "$dest" ]] && cmp -s -- "$src" "$dest" && [[ "$(stat -c %a -- "$dest")" == "${mode#0}" ]]; then
    say "unchanged: $what ($dest)"; return 0
  fi
  local verb=installed; [[ ! -e "$dest" ]] || verb=updated
  # A fresh temporary name (never a fixed one another user could have planted as a symlink).
  tmp="$(mktemp "$(dirname -- "$dest")/.$(basename -- "$dest").XXXXXX")"
  cat -- "$src" >"$tmp"
  chmod "$mode" "$tmp"
  [[ $(id -u) -ne 0 ]] || chown 0:0 "$tmp"
  mv -f -- "$tmp" "$dest"
  did "$verb: $what ($dest)"
}
# Creates DIR with MODE, or sets MODE on it; silent when it is already so.
put_dir() { # DIR MODE
  if [[ ! -d "$1" ]]; then install -d -m "$2" "$1"; did "created: $1"
  elif [[ "$(stat -c %a -- "$1")" != "${2#0}" ]]; then chmod "$2" "$1"; did "updated: mode $2 on $1"; fi
}

# 1. The user the agent runs as (agent.user in droverd.json, decision 0030): droverd runs as root,
#    the agent as drover, which cannot touch droverd's state, read its credentials or signal it.
if [[ -z "$root" ]]; then
  if getent passwd drover >/dev/null; then say "unchanged: the system user drover"
  else useradd --system --user-group --no-create-home --home-dir /var/lib/drover/agent-data --shell /usr/sbin/nologin drover; did "created: the system user drover"; fi
fi

# 2. Directories (systemd also creates the last two, with the same modes, from the unit).
[[ -z "$root" || -d "$root" ]] || { mkdir -- "$root"; did "created: $root"; }
for d in "$root/usr" "$root/usr/lib" "$root/etc" "$root/etc/systemd" "$root/var" "$root/var/lib" "$root/usr/local"; do
  [[ -d "$d" ]] || { install -d -m 0755 "$d"; did "created: $d"; }
done
put_dir "$lib" 0755
put_dir "$unit_dir" 0755
put_dir "$sbin" 0755
put_dir "$etc" 0755
put_dir "$etc/agent" 0755
put_dir "$state" 0711
# The agent's own directory, the drover user's: made here on this host, and at each boot by
# systemd-tmpfiles for an image built with --root (droverd, under its unit, may not change an owner).
put_dir "$root/usr/lib/tmpfiles.d" 0755
printf '%s\n' "# drover: the agent's own directory (agent.user, decision 0030); installed by drover's systemd/install.sh" \
  'd /var/lib/drover/agent-data 0700 drover drover -' >"$scratch/tmpfiles.conf"
put_file "$scratch/tmpfiles.conf" "$root/usr/lib/tmpfiles.d/drover.conf" 0644 "the agent's directory for systemd-tmpfiles"
if [[ -z "$root" ]]; then
  if [[ -d "$state/agent-data" && "$(stat -c '%U:%G %a' -- "$state/agent-data")" == "drover:drover 700" ]]; then say "unchanged: $state/agent-data"
  else install -d -o drover -g drover -m 0700 "$state/agent-data"; did "created: $state/agent-data (the drover user's, 0700)"; fi
fi

# 3. The package: the launcher (installed here once, never replaced by droverd itself) and the
#    droverd bundle, which becomes current/daemon unless droverd has updated itself since.
put_file "$launcher" "$lib/launcher.mjs" 0644 "the launcher"
put_file "$doc_src" "$lib/install.md" 0644 "the unit's documentation"
put_file "$bundle" "$lib/droverd-$version.mjs" 0644 "the droverd $version bundle"
if [[ "$current_daemon" == "$version" ]]; then
  say "unchanged: droverd $version is current"
elif [[ -n "$current_daemon" && $force_daemon -eq 0 ]]; then
  # A signed droverd release is a self-update (through the manager); an unsigned one came from a package.
  how="$("$node_bin" -e 'try { const r = JSON.parse(require("node:fs").readFileSync(process.argv[1], "utf8")); process.stdout.write(r.signed === true ? "a signed update since" : "installed by a package") } catch { process.stdout.write("unreadable installed.json") }' "$state/current/daemon/installed.json")"
  say "unchanged: droverd $current_daemon is current ($how; pass --force-daemon to make $version current)"
else
  droverd install --artifact daemon --unsigned --version "$version" "$lib/droverd-$version.mjs" >/dev/null
  did "installed: droverd $version as current/daemon${current_daemon:+ (previous $current_daemon)}"
fi
# The droverd command (droverd status, verify, ...): runs current/daemon with node and the unit's
# directories, not through the launcher (a command is no boot of a pending self-update).
if [[ -e "$sbin/droverd" || -L "$sbin/droverd" ]] && ! grep -qF "$cli_marker" "$sbin/droverd" 2>/dev/null; then
  say "unchanged: $sbin/droverd is not drover's; kept (remove it and run install.sh again for the droverd command)"
else
  sed "s#^node='/usr/bin/node'\$#node='$node_bin'#" "$cli_src" >"$scratch/droverd-cli"
  put_file "$scratch/droverd-cli" "$sbin/droverd" 0755 "the droverd command"
fi

# 4. Configuration, written once: droverd never writes it, and neither does this script again.
if [[ -f "$etc/droverd.json" ]]; then
  if [[ -n "$token" || -n "$manager" ]]; then say "unchanged: $etc/droverd.json exists; kept (the --manager options and enrollment token given were not written)"
  else say "unchanged: $etc/droverd.json"; fi
  if ! grep -q '"user"' "$etc/droverd.json" 2>/dev/null; then
    say "note: $etc/droverd.json runs the agent as root: add \"user\": \"drover\" to its \"agent\" section (decision 0030), then systemctl restart droverd"
  fi
elif [[ $write_config -eq 1 ]]; then
  put_file "$scratch/droverd.json" "$etc/droverd.json" 0600 "droverd.json, mode 0600: it holds the enrollment token"
else
  [[ -z "$token" ]] || say "the enrollment token given was not written: it goes into droverd.json, which needs --manager"
  say "no $etc/droverd.json: write one (docs/install.md), or run install.sh again with --manager URL --manager-key KEY --token-file FILE"
fi

# 5. The release trust policy: the root of trust for every agent and droverd release.
if [[ -f "$state/trust.json" ]]; then
  if [[ -n "$trust" ]] && ! cmp -s -- "$trust" "$state/trust.json"; then say "unchanged: $state/trust.json exists; kept (the --trust given differs: replace the file yourself to change the policy)"
  else say "unchanged: $state/trust.json"; fi
elif [[ -n "$trust" ]]; then put_file "$trust" "$state/trust.json" 0644 "the trust policy"
else say "no trust policy: install one at $state/trust.json (drover trust create), or no update will verify"; fi

# 6. A first agent release, verified like any update (and already, above, in the scratch state).
if [[ -n "$agent" ]]; then
  if [[ $install_agent -eq 0 ]]; then say "unchanged: agent $(basename "$(readlink "$state/current/agent")") is installed; kept"
  else droverd install --release "$agent_release" "$agent" >/dev/null; did "installed: the first agent release ($(basename "$(readlink "$state/current/agent")"))"; fi
fi

# 7. The unit, with this host's node; flags after the node path are kept.
unit_before="$(cat -- "$unit_dir/droverd.service" 2>/dev/null || true)"
sed "s#^ExecStart=/usr/bin/node #ExecStart=$node_bin #" "$unit_src" >"$scratch/droverd.service"
put_file "$scratch/droverd.service" "$unit_dir/droverd.service" 0644 "the unit"
unit_changed=0
[[ "$unit_before" == "$(cat -- "$unit_dir/droverd.service")" ]] || unit_changed=1

# 8. Enable and start, only on a host booted with systemd, never under --root.
if [[ $booted -eq 1 ]]; then
  [[ $unit_changed -eq 0 ]] || systemctl daemon-reload
  if systemctl is-enabled --quiet droverd.service; then say "unchanged: droverd.service is enabled"
  else systemctl enable --quiet droverd.service; did "enabled: droverd.service"; fi
  if systemctl is-active --quiet droverd.service; then
    if [[ $unit_changed -eq 1 ]]; then say "droverd is running with the previous unit: it picks up the new one at its next restart (systemctl restart droverd)"
    else say "unchanged: droverd is running (journalctl -u droverd -f)"; fi
  else systemctl start droverd.service; did "started: droverd (journalctl -u droverd -f)"; fi
else
  say "not starting the service (--root, --no-start, or not booted with systemd)"
fi
if [[ $changed -eq 0 ]]; then say "nothing changed"; fi
