#!/usr/bin/env bash
# Installs (or, with --uninstall, removes) vmware-mysql-snapshot: one self-contained executable, plus
# symlinks under the names the hypervisor's guest agent calls, a configuration template, a logrotate
# file and a systemd-tmpfiles entry. Run ./install.sh --help for the details.
#
# Every path created is recorded in a manifest, so that --uninstall removes exactly those. All paths in
# this script are paths on the target system; DESTDIR is only ever prepended when touching the disk.
set -euo pipefail

readonly NAME=vmware-mysql-snapshot
readonly BACKUP_SUFFIX=.before-vmware-mysql-snapshot

readonly LEGACY_HOOKS=(/usr/sbin/pre-freeze-script /usr/sbin/post-thaw-script /usr/sbin/pre-freeze-mysql-lock)
readonly BACKUP_SCRIPTS_D_HOOK=/etc/vmware-tools/backupScripts.d/50-mysql
# QEMU: Debian and Ubuntu keep qemu-ga's files in /etc/qemu, RHEL and its kin in /etc/qemu-ga.
readonly QEMU_DIRS=(/etc/qemu /etc/qemu-ga)
readonly QEMU_HOOKS=(/etc/qemu/fsfreeze-hook.d/mysql /etc/qemu-ga/fsfreeze-hook.d/mysql)
readonly QEMU_DISPATCHERS=(/etc/qemu/vmware-mysql-snapshot-fsfreeze-hook /etc/qemu-ga/vmware-mysql-snapshot-fsfreeze-hook)
readonly ALL_HOOKS=("${LEGACY_HOOKS[@]}" "$BACKUP_SCRIPTS_D_HOOK" "${QEMU_HOOKS[@]}")
readonly CONFIG=/etc/vmware-mysql-snapshot.cnf
readonly LOGROTATE=/etc/logrotate.d/vmware-mysql-snapshot
readonly TMPFILES=/usr/lib/tmpfiles.d/vmware-mysql-snapshot.conf
readonly RUN_DIR=/run/vmware-mysql-snapshot
readonly LOG_FILE=/var/log/vmware-mysql-snapshot.log
readonly MANIFEST=/var/lib/vmware-mysql-snapshot/install-manifest
readonly QEMU_GA_CONF=/etc/qemu/qemu-ga.conf
readonly QEMU_SYSCONFIG=/etc/sysconfig/qemu-ga
readonly HOLDER_NAME=pre-freeze-mysql-lock

# ------------------------------------------------------------------------------ other agents: paths
# Their profiles (names, time limits, who freezes what) are in src/agents/profiles.ts; test/agents/
# profiles.test.ts checks that the options and names below are theirs.
readonly GCP_PRE=/etc/google/snapshots/pre.sh
readonly GCP_POST=/etc/google/snapshots/post.sh
readonly AZURE_CONFIG=/etc/azure/VMSnapshotScriptPluginConfig.json
readonly AZURE_PRE=/etc/azure/vmware-mysql-snapshot-pre.sh
readonly AZURE_POST=/etc/azure/vmware-mysql-snapshot-post.sh
# Azure's own limit must cover freeze_timeout and the freeze's start and clean-up (FREEZE_OVERHEAD_SECONDS).
readonly AZURE_DEFAULT_FREEZE_TIMEOUT=20
readonly FREEZE_OVERHEAD_SECONDS=4
readonly AZURE_TIMEOUT_MINIMUM=30
readonly AZURE_TIMEOUT_MAXIMUM=1800
readonly NUTANIX_PRE=/usr/local/sbin/pre_freeze
readonly NUTANIX_POST=/usr/local/sbin/post_thaw
readonly AGENT_LINK_DIR=libexec/vmware-mysql-snapshot
readonly INSTALLED_MARK="Installed by $NAME"
readonly AGENT_FILES=("$GCP_PRE" "$GCP_POST" "$AZURE_CONFIG" "$AZURE_PRE" "$AZURE_POST" "$NUTANIX_PRE" "$NUTANIX_POST")

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
readonly SCRIPT_DIR
PROGRAM=$(basename -- "$0")
readonly PROGRAM

usage() {
  cat <<EOF
Usage: sudo ./$PROGRAM [--prefix DIR] [--binary FILE] [--vmware] [--backup-scripts-d] [--qemu]
           [--gcp] [--azure] [--nutanix] [--veeam] [--aws] [--force]
       sudo ./$PROGRAM --uninstall [--purge]

Installs vmware-mysql-snapshot, the freeze/thaw hook that holds FLUSH TABLES WITH READ LOCK on
MySQL/MariaDB while VMware Tools or the QEMU guest agent snapshots the VM. Build it first
(npm run build makes dist/vmware-mysql-snapshot); the target machine needs no Node.

What it installs (all root:root):
  PREFIX/sbin/$NAME
      the executable, mode 700
  /usr/sbin/pre-freeze-script, /usr/sbin/post-thaw-script, /usr/sbin/pre-freeze-mysql-lock
      symlinks to it under VMware Tools' legacy hook names (the default layout)
  $CONFIG
      configuration template, mode 600; an existing one is never overwritten
  $LOGROTATE
      log rotation, mode 644
  $TMPFILES
      makes $RUN_DIR (mode 700) at boot
  $MANIFEST
      every path created, for --uninstall

Options:
  --prefix DIR         put the executable in DIR/sbin (default: \$PREFIX, else /usr/local)
  --binary FILE        install FILE instead of dist/$NAME beside this script
  --backup-scripts-d   link $BACKUP_SCRIPTS_D_HOOK instead of the legacy names
  --qemu               for the QEMU guest agent (Proxmox, libvirt, OpenStack), instead of the
                       legacy names: link ${QEMU_HOOKS[0]}, install
                       ${QEMU_DISPATCHERS[0]} (QEMU's dispatcher, but a failed
                       freeze fails qemu-ga's freeze) and set it as qemu-ga's fsfreeze-hook in
                       $QEMU_GA_CONF [general]; on RHEL-like systems the same in
                       /etc/qemu-ga/ and FSFREEZE_HOOK_PATHNAME in $QEMU_SYSCONFIG.
                       A setting the admin made is never changed: it says what to change.
                       (--backup-scripts-d and --qemu may be combined)
  --vmware             the legacy VMware names (the default when no other layout is named)
  --gcp                Google Compute Engine: $GCP_PRE and post.sh (mode 700)
  --azure              Azure VM Backup: $AZURE_PRE, ...-post.sh (POSIX sh, mode 700)
                       and $AZURE_CONFIG (mode 600) naming them;
                       an existing plugin configuration is kept unless --force moves it aside
  --nutanix            Nutanix Guest Tools: $NUTANIX_PRE and $NUTANIX_POST (mode 700)
  --veeam              Veeam: PREFIX/share/$NAME/veeam/pre-freeze.sh and post-thaw.sh, to select in the job
  --aws                AWS Data Lifecycle Manager: PREFIX/share/$NAME/aws/ssm-document.yaml, an SSM
                       Command document to create in the account
                       (every layout may be combined with the others: name all of them in one run)
  --force              a hook file (or Azure plugin configuration) that this script did not install is moved aside to
                       FILE$BACKUP_SUFFIX instead of stopping the install
  --uninstall          remove what the manifest lists (the configuration stays), put files that
                       --force moved aside back, remove the manifest
  --purge              as --uninstall, and also remove $CONFIG,
                       $LOG_FILE* and $RUN_DIR
  -h, --help           this text

Environment:
  DESTDIR   install below this directory instead of / (packages, tests); the links still point
            at PREFIX/sbin/$NAME. Without DESTDIR it must run as root; with
            DESTDIR and not as root, the files are left owned by the current user.
  PREFIX    as --prefix

Notes:
  - Mode 700, owned by root: some backup vendors' agents (Azure, Commvault/Nutanix) refuse to run a
    hook that is not root-owned with mode 700, and a configuration file that is not mode 600.
  - Choose ONE VMware layout: VMware Tools runs the legacy scripts AND every backupScripts.d entry, so
    both would freeze twice and fail the snapshot. Running this script with another layout removes the
    links of the previous one. On EL8 with SELinux, --backup-scripts-d is the safer choice.
  - --qemu: Debian's and Ubuntu's qemu-ga runs no fsfreeze hook at all until qemu-ga.conf names one,
    and QEMU's stock dispatcher only logs a freeze that failed (the host then snapshots without the
    lock). qemu-ga reads its settings when it starts: restart it (systemctl restart qemu-guest-agent).
    --uninstall takes out exactly the lines it added and puts back a value it replaced.
  - An existing hook that is not a symlink to our executable is never replaced without --force: the
    install then stops before changing anything and shows the file.
  - Running it again changes nothing; it prints one line for each file: installed, kept, replaced,
    removed, moved aside, restored.

Exit status: 0 done; 1 refused or failed (when refused, nothing was changed); 2 bad command line.
EOF
}

# ---------------------------------------------------------------------------------------------- output

say() {
  printf '%-11s %s\n' "$1" "$2"
}

note() {
  printf '%s: note: %s\n' "$PROGRAM" "$*" >&2
}

warn() {
  printf '%s: warning: %s\n' "$PROGRAM" "$*" >&2
}

die() {
  printf '%s: %s\n' "$PROGRAM" "$*" >&2
  exit 1
}

usage_error() {
  printf '%s: %s (see %s --help)\n' "$PROGRAM" "$*" "$PROGRAM" >&2
  exit 2
}

# ---------------------------------------------------------------------------------------- command line

binary=$SCRIPT_DIR/dist/$NAME
prefix=${PREFIX:-/usr/local}
uninstall=0
purge=0
force=0
want_backup_scripts_d=0
want_qemu=0
want_vmware=0
want_agents=()
install_only_options=()

while [ $# -gt 0 ]; do
  case $1 in
    -h | --help)
      usage
      exit 0
      ;;
    --binary)
      [ $# -ge 2 ] || usage_error "$1 needs a file"
      binary=$2
      install_only_options+=("$1")
      shift
      ;;
    --prefix)
      [ $# -ge 2 ] || usage_error "$1 needs a directory"
      prefix=$2
      shift
      ;;
    --binary=*)
      binary=${1#*=}
      install_only_options+=(--binary)
      ;;
    --prefix=*) prefix=${1#*=} ;;
    --backup-scripts-d)
      want_backup_scripts_d=1
      install_only_options+=("$1")
      ;;
    --qemu)
      want_qemu=1
      install_only_options+=("$1")
      ;;
    --force)
      force=1
      install_only_options+=("$1")
      ;;
    --vmware)
      want_vmware=1
      install_only_options+=("$1")
      ;;
    --gcp | --azure | --nutanix | --veeam | --aws)
      want_agents+=("${1#--}")
      install_only_options+=("$1")
      ;;
    --uninstall) uninstall=1 ;;
    --purge)
      purge=1
      uninstall=1
      ;;
    *) usage_error "unknown argument: $1" ;;
  esac
  shift
done

if [ "$uninstall" = 1 ] && [ "${#install_only_options[@]}" -gt 0 ]; then
  usage_error "${install_only_options[0]} is for installing, not with --uninstall"
fi
case $prefix in
  /*) ;;
  *) usage_error "the prefix must be an absolute path: $prefix" ;;
esac
prefix=$(realpath -ms -- "$prefix")
readonly EXE=$prefix/sbin/$NAME

DESTDIR=${DESTDIR:-}
if [ -n "$DESTDIR" ]; then
  DESTDIR=$(realpath -m -- "$DESTDIR")
  [ "$DESTDIR" != / ] || DESTDIR=
fi
readonly DESTDIR

if [ "$(id -u)" -eq 0 ]; then
  can_chown=1
elif [ -z "$DESTDIR" ]; then
  die "must run as root to change the system (sudo ./$PROGRAM), or set DESTDIR to stage the files in a directory"
else
  can_chown=0
fi
readonly can_chown

# ------------------------------------------------------------------------------------------------ paths

# The path on disk of a path on the target system.
on_disk() {
  printf '%s%s' "$DESTDIR" "$1"
}

# True when something (even a dangling symlink) is at the target-system path $1.
present() {
  local file
  file=$(on_disk "$1")
  [ -e "$file" ] || [ -L "$file" ]
}

old_manifest=()
new_manifest=()

read_manifest() {
  local file
  file=$(on_disk "$MANIFEST")
  if [ -f "$file" ]; then
    mapfile -t old_manifest <"$file"
  fi
}

in_list() {
  local wanted=$1 item
  shift
  for item in "$@"; do
    [ "$item" = "$wanted" ] && return 0
  done
  return 1
}

in_old_manifest() {
  in_list "$1" "${old_manifest[@]+"${old_manifest[@]}"}"
}

record() {
  in_list "$1" "${new_manifest[@]+"${new_manifest[@]}"}" || new_manifest+=("$1")
}

# Ours: a symlink to our executable, or a symlink the manifest lists that points at the executable the
# manifest lists (an earlier install with another --prefix).
is_our_link() {
  local file target
  file=$(on_disk "$1")
  [ -L "$file" ] || return 1
  target=$(readlink -- "$file")
  [ "$target" = "$EXE" ] && return 0
  in_old_manifest "$1" && in_old_manifest "$target" && [ "$(basename -- "$target")" = "$NAME" ]
}

owner_is_right() {
  [ "$can_chown" = 0 ] || [ "$(stat -c %u:%g -- "$1")" = 0:0 ]
}

set_owner() {
  if [ "$can_chown" = 1 ]; then
    chown -h root:root -- "$1"
  fi
}

# -------------------------------------------------------------------------- QEMU guest agent (--qemu)
#
# qemu-ga runs one fsfreeze hook, named by -F or by fsfreeze-hook= in qemu-ga.conf ([general]); Debian's
# and Ubuntu's service passes neither, so no hook runs at all. RHEL's passes -F$FSFREEZE_HOOK_PATHNAME
# from /etc/sysconfig/qemu-ga. We point that setting at our dispatcher (qemu/fsfreeze-hook), unless the
# admin set it to something else. Every line added or replaced follows a line starting with QEMU_MARK, so
# that --uninstall takes out exactly those and puts back what was replaced, whatever else changed since.

readonly QEMU_MARK='# vmware-mysql-snapshot install.sh --qemu'
readonly QEMU_STOCK_RHEL_HOOK=/etc/qemu-ga/fsfreeze-hook
readonly QEMU_UNITS=(/lib/systemd/system/qemu-guest-agent.service /usr/lib/systemd/system/qemu-guest-agent.service /etc/systemd/system/qemu-guest-agent.service)

# 1 once qemu-ga's settings were changed by this run (it must be restarted to read them)
qemu_changed=0

# /etc/qemu-ga on RHEL-like systems, /etc/qemu elsewhere.
qemu_dir() {
  if present "$QEMU_SYSCONFIG" || { is_real_dir "$(on_disk /etc/qemu-ga)" && ! is_real_dir "$(on_disk /etc/qemu)"; }; then
    printf '%s' /etc/qemu-ga
  else
    printf '%s' /etc/qemu
  fi
}

# The last value of key $3 in group $2 of the GKeyFile $1 (qemu-ga.conf); fails if it has none.
keyfile_value() {
  awk -v group="$2" -v key="$3" '
    /^[[:space:]]*\[/ { current = $0; gsub(/^[[:space:]]*\[|\][[:space:]]*$/, "", current); next }
    current == group && !/^[[:space:]]*#/ && index($0, "=") > 0 {
      name = substr($0, 1, index($0, "=") - 1); gsub(/^[[:space:]]+|[[:space:]]+$/, "", name)
      if (name == key) { value = substr($0, index($0, "=") + 1); gsub(/^[[:space:]]+|[[:space:]]+$/, "", value); found = 1 }
    }
    END { if (!found) exit 1; print value }' "$1"
}

# The last value of the shell variable $2 in the environment file $1 (/etc/sysconfig/qemu-ga), unquoted.
envfile_value() {
  awk -v name="$2" '
    index($0, name "=") == 1 { value = substr($0, length(name) + 2); gsub(/^["'"'"']|["'"'"'][[:space:]]*$/, "", value); found = 1 }
    END { if (!found) exit 1; print value }' "$1"
}

# Replaces the file $1 (on disk) with the output of the command that follows, given the file on its
# input; mode and owner are kept, and the new version is renamed into place.
rewrite_file() {
  local file=$1 temp
  shift
  temp=$(mktemp -- "$file.XXXXXX")
  temps+=("$temp")
  "$@" <"$file" >"$temp"
  chmod --reference="$file" -- "$temp"
  if [ "$can_chown" = 1 ]; then
    chown --reference="$file" -- "$temp"
  fi
  mv -fT -- "$temp" "$file"
}

# Debian, Ubuntu: fsfreeze-hook=$1 in [general] of qemu-ga.conf.
configure_qemu_conf() {
  local dispatcher=$1 file value
  file=$(on_disk "$QEMU_GA_CONF")
  if ! present "$QEMU_GA_CONF"; then
    ensure_dir "$(dirname -- "$QEMU_GA_CONF")"
    printf '%s: file created (--uninstall removes it)\n%s: added\n[general]\n%s: added\nfsfreeze-hook=%s\n' \
      "$QEMU_MARK" "$QEMU_MARK" "$QEMU_MARK" "$dispatcher" >"$file"
    chmod 644 -- "$file"
    set_owner "$file"
    qemu_changed=1
    say configured "$file (created: [general] fsfreeze-hook=$dispatcher)"
  elif value=$(keyfile_value "$file" general fsfreeze-hook); then
    if [ "$value" = "$dispatcher" ]; then
      say kept "$file (fsfreeze-hook=$dispatcher)"
    else
      warn "$file already sets fsfreeze-hook=$value in [general]: not changed. A freeze of ours that fails stops the snapshot only through $dispatcher: set fsfreeze-hook=$dispatcher there (it runs the other fsfreeze-hook.d scripts as QEMU's does), then restart qemu-ga"
    fi
  elif grep -Eq '^[[:space:]]*\[general\][[:space:]]*$' "$file"; then
    # shellcheck disable=SC2016 # awk's own variables
    rewrite_file "$file" awk -v mark="$QEMU_MARK" -v line="fsfreeze-hook=$dispatcher" '
      { print }
      !done && /^[[:space:]]*\[general\][[:space:]]*$/ { print mark ": added"; print line; done = 1 }'
    qemu_changed=1
    say configured "$file ([general] fsfreeze-hook=$dispatcher added)"
  else
    # shellcheck disable=SC2016 # awk's own variables
    rewrite_file "$file" awk -v mark="$QEMU_MARK" -v line="fsfreeze-hook=$dispatcher" '
      { print }
      END { print mark ": added"; print "[general]"; print mark ": added"; print line }'
    qemu_changed=1
    say configured "$file ([general] fsfreeze-hook=$dispatcher added)"
  fi
  local unit
  for unit in "${QEMU_UNITS[@]}"; do
    [ -f "$(on_disk "$unit")" ] || continue
    if grep -Eq '^[[:space:]]*ExecStart=.*[[:space:]](-F|--fsfreeze-hook)' "$(on_disk "$unit")"; then
      warn "$(on_disk "$unit") starts qemu-ga with its own -F, which wins over $QEMU_GA_CONF: make it -F$dispatcher"
    fi
  done
}

# RHEL and its kin: FSFREEZE_HOOK_PATHNAME=$1 in /etc/sysconfig/qemu-ga (the unit passes it as -F).
configure_qemu_sysconfig() {
  local dispatcher=$1 file value
  file=$(on_disk "$QEMU_SYSCONFIG")
  if ! value=$(envfile_value "$file" FSFREEZE_HOOK_PATHNAME); then
    # shellcheck disable=SC2016 # awk's own variables
    rewrite_file "$file" awk -v mark="$QEMU_MARK" -v line="FSFREEZE_HOOK_PATHNAME=$dispatcher" '
      { print }
      END { print mark ": added"; print line }'
    qemu_changed=1
    say configured "$file (FSFREEZE_HOOK_PATHNAME=$dispatcher added)"
    warn "check that qemu-guest-agent.service passes -F\${FSFREEZE_HOOK_PATHNAME}: $QEMU_SYSCONFIG had no FSFREEZE_HOOK_PATHNAME"
  elif [ "$value" = "$dispatcher" ]; then
    say kept "$file (FSFREEZE_HOOK_PATHNAME=$dispatcher)"
  elif [ "$value" = "$QEMU_STOCK_RHEL_HOOK" ]; then
    # The package's own value: the stock dispatcher, which runs the same scripts but only logs a failed freeze.
    # shellcheck disable=SC2016 # awk's own variables
    rewrite_file "$file" awk -v mark="$QEMU_MARK" -v line="FSFREEZE_HOOK_PATHNAME=$dispatcher" '
      index($0, "FSFREEZE_HOOK_PATHNAME=") == 1 { print mark ": replaced: " $0; print line; next }
      { print }'
    qemu_changed=1
    say configured "$file (FSFREEZE_HOOK_PATHNAME=$dispatcher instead of the package's $QEMU_STOCK_RHEL_HOOK; --uninstall puts it back)"
  else
    warn "$file sets FSFREEZE_HOOK_PATHNAME=$value: not changed. A freeze of ours that fails stops the snapshot only through $dispatcher: set FSFREEZE_HOOK_PATHNAME=$dispatcher there (it runs the other fsfreeze-hook.d scripts as QEMU's does), then restart qemu-ga"
  fi
}

configure_qemu() {
  local dir=$1
  if [ "$dir" = /etc/qemu-ga ] && present "$QEMU_SYSCONFIG"; then
    configure_qemu_sysconfig "$dir/vmware-mysql-snapshot-fsfreeze-hook"
  else
    configure_qemu_conf "$dir/vmware-mysql-snapshot-fsfreeze-hook"
  fi
  if [ "$qemu_changed" = 1 ]; then
    note "qemu-ga reads its settings only when it starts: restart it now (systemctl restart qemu-guest-agent), then check with: $NAME doctor"
  fi
}

# Takes out what configure_qemu added to qemu-ga's settings and puts back what it replaced (a line the
# admin changed since is left as it is); removes a file it created if nothing else is in it now.
unconfigure_qemu() {
  local target file changed=0 created
  for target in "$QEMU_GA_CONF" "$QEMU_SYSCONFIG"; do
    file=$(on_disk "$target")
    [ -f "$file" ] && [ ! -L "$file" ] && grep -qF -- "$QEMU_MARK" "$file" || continue
    created=0
    grep -qF -- "$QEMU_MARK: file created" "$file" && created=1
    # shellcheck disable=SC2016 # awk's own variables
    rewrite_file "$file" awk -v mark="$QEMU_MARK" '
      pending == "added" { pending = ""; if ($0 ~ /vmware-mysql-snapshot/ || $0 ~ /^\[general\]$/) next }
      pending == "replaced" { pending = ""; if ($0 ~ /vmware-mysql-snapshot/) { print original; next } }
      index($0, mark ": file created") == 1 { next }
      index($0, mark ": added") == 1 { pending = "added"; next }
      index($0, mark ": replaced: ") == 1 { pending = "replaced"; original = substr($0, length(mark ": replaced: ") + 1); next }
      { print }'
    changed=1
    if [ "$created" = 1 ] && ! grep -q '[^[:space:]]' "$file"; then
      rm -f -- "$file"
      say removed "$file (install.sh --qemu had made it)"
    else
      say restored "$file (what install.sh --qemu added is out, what it replaced is back)"
    fi
  done
  if [ "$changed" = 1 ]; then
    note "restart qemu-ga so that it reads its settings again (systemctl restart qemu-guest-agent)"
  fi
}

# ----------------------------------------------------------------------------------------------- install

# Temporary files to remove if the script stops before renaming them into place.
temps=()

cleanup() {
  if [ "${#temps[@]}" -gt 0 ]; then
    rm -f -- "${temps[@]}"
  fi
}
trap cleanup EXIT

is_real_dir() {
  [ -d "$1" ] && [ ! -L "$1" ]
}

# Creates the directory $1 and its missing parents (mode 755), recording those it creates.
ensure_dir() {
  local dir=$1
  if [ "$dir" = / ]; then
    if [ -n "$DESTDIR" ]; then
      mkdir -p -- "$DESTDIR"
    fi
    return
  fi
  ensure_dir "$(dirname -- "$dir")"
  local file
  file=$(on_disk "$dir")
  if [ -d "$file" ]; then
    if in_old_manifest "$dir"; then
      record "$dir"
    fi
    return
  fi
  mkdir -m 755 -- "$file"
  set_owner "$file"
  record "$dir"
  say created "$file/"
}

# Installs the regular file $1 as $2 with mode $3. The new copy is renamed into place, so that a running
# copy of the executable (a lock holder during a snapshot) keeps its own file and nothing is half-written.
put_file() {
  local source=$1 target=$2 mode=$3 file verb=installed
  file=$(on_disk "$target")
  ensure_dir "$(dirname -- "$target")"
  if [ -f "$file" ] && [ ! -L "$file" ]; then
    if cmp -s -- "$source" "$file" && [ "$(stat -c %a -- "$file")" = "$mode" ] && owner_is_right "$file"; then
      record "$target"
      say kept "$file"
      return
    fi
    verb=replaced
  elif present "$target"; then
    verb=replaced
  fi
  local temp
  temp=$(mktemp -- "$file.XXXXXX")
  temps+=("$temp")
  cp -- "$source" "$temp"
  chmod "$mode" -- "$temp"
  set_owner "$temp"
  mv -fT -- "$temp" "$file"
  record "$target"
  say "$verb" "$file"
}

# The same for text given on standard input.
put_text() {
  local target=$1 mode=$2 source
  source=$(mktemp)
  temps+=("$source")
  cat >"$source"
  put_file "$source" "$target" "$mode"
}

# Links the hook name $1 to our executable. The preflight has made sure that anything else already there
# may be moved aside (--force).
put_link() {
  local target=$1 file verb=installed
  file=$(on_disk "$target")
  ensure_dir "$(dirname -- "$target")"
  if is_our_link "$target"; then
    if [ "$(readlink -- "$file")" = "$EXE" ]; then
      record "$target"
      say kept "$file -> $EXE"
      return
    fi
    verb=replaced
  elif present "$target"; then
    mv -T -- "$file" "$file$BACKUP_SUFFIX"
    say 'moved aside' "$file -> $file$BACKUP_SUFFIX"
  fi
  local temp=$file.new-$$
  temps+=("$temp")
  rm -f -- "$temp"
  ln -s -- "$EXE" "$temp"
  mv -fT -- "$temp" "$file"
  record "$target"
  say "$verb" "$file -> $EXE"
}

put_config() {
  local file
  file=$(on_disk "$CONFIG")
  ensure_dir "$(dirname -- "$CONFIG")"
  if present "$CONFIG"; then
    if in_old_manifest "$CONFIG"; then
      record "$CONFIG"
    fi
    say kept "$file (existing configuration, not overwritten)"
    if [ -f "$file" ] && [ "$(stat -L -c %a -- "$file")" != 600 ]; then
      warn "$file has mode $(stat -L -c %a -- "$file"): make it 600 if it holds a password (chmod 600 $file)"
    fi
    return
  fi
  put_file "$SCRIPT_DIR/config/$NAME.cnf" "$CONFIG" 600
}

# Shows what is at the hook path $1 and why it stops the install.
show_foreign() {
  local file
  file=$(on_disk "$1")
  printf '%s: %s exists and was not installed by %s:\n' "$PROGRAM" "$file" "$NAME"
  # shellcheck disable=SC2012 # the ls -l line is what the admin wants to see
  ls -ld -- "$file" | sed 's/^/    /'
  if [ -f "$file" ] && grep -Iq . "$file"; then
    head -n 5 -- "$file" | sed 's/^/    | /'
  fi
}

# Checks every target before anything changes. Prints the problems; returns 1 if there are any.
preflight() {
  local hooks=("$@") hook file problems=0 target
  for hook in "${hooks[@]}"; do
    present "$hook" || continue
    is_our_link "$hook" && continue
    file=$(on_disk "$hook")
    if [ "$force" = 0 ]; then
      show_foreign "$hook" >&2
      problems=1
    elif present "$hook$BACKUP_SUFFIX"; then
      printf '%s: %s exists and is not ours, and %s is taken: move one of them away\n' \
        "$PROGRAM" "$file" "$file$BACKUP_SUFFIX" >&2
      problems=1
    fi
  done
  for target in "$EXE" "$LOGROTATE" "$TMPFILES" "$CONFIG"; do
    file=$(on_disk "$target")
    if is_real_dir "$file"; then
      printf '%s: %s is a directory: remove it first\n' "$PROGRAM" "$file" >&2
      problems=1
    fi
  done
  return "$problems"
}

check_binary() {
  [ -f "$binary" ] || die "$binary not found: build it with npm run build, or name another one with --binary FILE"
  [ -r "$binary" ] || die "$binary cannot be read"
  if [ ! -x "$binary" ]; then
    note "$binary is not executable here: not trying it (it is installed with mode 700)"
    return
  fi
  local version
  # Started as vmware-mysql-snapshot whatever the file is called, so that only the CLI answers.
  # shellcheck disable=SC2016 # $1 and $2 are the inner shell's arguments
  if version=$(env -u NODE_OPTIONS bash -c 'exec -a "$1" "$2" --version' _ "$NAME" "$binary" 2>/dev/null); then
    printf 'installing %s %s from %s\n' "$NAME" "$version" "$binary"
  elif [ -z "$DESTDIR" ]; then
    die "$binary does not run on this machine ($binary --version failed): it needs x86-64 Linux with glibc 2.28 or later"
  else
    warn "$binary --version failed on this machine; installing it anyway into $DESTDIR"
  fi
}

have_program() {
  command -v "$1" >/dev/null 2>&1 || [ -x "/usr/bin/$1" ] || [ -x "/usr/sbin/$1" ]
}

create_run_dir() {
  [ -z "$DESTDIR" ] || return 0
  if ! command -v systemd-tmpfiles >/dev/null 2>&1; then
    note "no systemd-tmpfiles: $NAME creates $RUN_DIR itself (mode 700) when it first runs"
    return 0
  fi
  local existed=0
  [ -d "$RUN_DIR" ] && existed=1
  if ! systemd-tmpfiles --create "$TMPFILES"; then
    warn "systemd-tmpfiles --create $TMPFILES failed; $NAME creates $RUN_DIR itself when it first runs"
  elif [ "$existed" = 0 ] && [ -d "$RUN_DIR" ]; then
    say created "$RUN_DIR/ (systemd-tmpfiles)"
  fi
}

relabel_for_selinux() {
  [ -z "$DESTDIR" ] || return 0
  if ! command -v restorecon >/dev/null 2>&1 || ! command -v selinuxenabled >/dev/null 2>&1 || ! selinuxenabled; then
    return 0
  fi
  local target existing=()
  for target in "${new_manifest[@]}"; do
    present "$target" && existing+=("$target")
  done
  restorecon -F -- "${existing[@]}" || warn "restorecon failed: check the SELinux labels of the installed files"
}

# Writes new_manifest unless the manifest already says exactly that (so that a second run changes
# nothing). The manifest's own directory is listed too when this script made it.
write_manifest() {
  local file temp
  ensure_dir "$(dirname -- "$MANIFEST")"
  file=$(on_disk "$MANIFEST")
  temp=$(mktemp -- "$file.XXXXXX")
  temps+=("$temp")
  printf '%s\n' "${new_manifest[@]}" >"$temp"
  if [ -f "$file" ] && cmp -s -- "$temp" "$file"; then
    rm -f -- "$temp"
  else
    chmod 644 -- "$temp"
    set_owner "$temp"
    mv -fT -- "$temp" "$file"
  fi
}

# If the install stops half-way, the manifest still lists what it made (and what it listed before).
save_partial_manifest() {
  local status=$?
  cleanup
  if [ "$status" -ne 0 ]; then
    local entry
    for entry in "${old_manifest[@]+"${old_manifest[@]}"}"; do
      record "$entry"
    done
    if [ "${#new_manifest[@]}" -gt 0 ]; then
      write_manifest || true
    fi
    printf '%s: stopped before the end; %s lists what is installed so far (run it again, or --uninstall)\n' \
      "$PROGRAM" "$(on_disk "$MANIFEST")" >&2
  fi
}

# ------------------------------------------------------------------------------ other agents: install
# Google, Azure, Nutanix, Veeam, AWS: each gets a link named after it (PREFIX/libexec/NAME/AGENT-hook, the
# name that tells the executable which agent calls it, src/agents/profiles.ts) and the files its agent
# runs or reads, which exec that link.

agent_links=()
# target|mode|agent|word: a wrapper script that execs the agent's link with the word
agent_scripts=()
# target|kind: a generated file (azure-config, aws-document)
agent_documents=()

plan_agents() {
  local agent libexec=$prefix/$AGENT_LINK_DIR share=$prefix/share/$NAME
  for agent in "${want_agents[@]+"${want_agents[@]}"}"; do
    agent_links+=("$libexec/$agent-hook")
    case $agent in
      gcp) agent_scripts+=("$GCP_PRE|700|gcp|freeze" "$GCP_POST|700|gcp|thaw") ;;
      azure)
        agent_scripts+=("$AZURE_PRE|700|azure|freeze" "$AZURE_POST|700|azure|thaw")
        agent_documents+=("$AZURE_CONFIG|azure-config")
        ;;
      nutanix) agent_scripts+=("$NUTANIX_PRE|700|nutanix|freeze" "$NUTANIX_POST|700|nutanix|thaw") ;;
      veeam) agent_scripts+=("$share/veeam/pre-freeze.sh|755|veeam|freeze" "$share/veeam/post-thaw.sh|755|veeam|thaw") ;;
      aws) agent_documents+=("$share/aws/ssm-document.yaml|aws-document") ;;
    esac
  done
}

agent_file_targets() {
  local entry
  for entry in "${agent_scripts[@]+"${agent_scripts[@]}"}" "${agent_documents[@]+"${agent_documents[@]}"}"; do
    printf '%s\n' "${entry%%|*}"
  done
}

# A file at an agent's path that no install of ours made stops the install (--force moves it aside).
preflight_agent_files() {
  local target file problems=0
  while IFS= read -r target; do
    present "$target" || continue
    in_old_manifest "$target" && continue
    file=$(on_disk "$target")
    if is_real_dir "$file"; then
      printf '%s: %s is a directory: remove it first\n' "$PROGRAM" "$file" >&2
      problems=1
    elif [ "$force" = 0 ]; then
      show_foreign "$target" >&2
      problems=1
    elif present "$target$BACKUP_SUFFIX"; then
      printf '%s: %s exists and is not ours, and %s is taken: move one of them away\n' \
        "$PROGRAM" "$file" "$file$BACKUP_SUFFIX" >&2
      problems=1
    fi
  done < <(agent_file_targets)
  return "$problems"
}

# Moves a file that is not ours out of the way of $1 (the preflight allowed it: --force).
move_foreign_aside() {
  local file
  file=$(on_disk "$1")
  if present "$1" && ! in_old_manifest "$1"; then
    mv -T -- "$file" "$file$BACKUP_SUFFIX"
    say 'moved aside' "$file -> $file$BACKUP_SUFFIX"
  fi
}

wrapper_script() {
  local agent=$1 word=$2
  cat <<EOF
#!/bin/sh
# $INSTALLED_MARK (install.sh --$agent). The agent runs this as its $word script; it hands
# over to the hook, which logs to its own log file (see $NAME doctor).
exec $prefix/$AGENT_LINK_DIR/$agent-hook $word "\$@"
EOF
}

# freeze_timeout as the configuration sets it, or nothing.
configured_freeze_timeout() {
  local config
  config=$(on_disk "$CONFIG")
  [ -r "$config" ] || return 0
  sed -n 's/^[[:space:]]*freeze[_-]timeout[[:space:]]*=[[:space:]]*\([0-9][0-9.]*\).*$/\1/p' -- "$config" | tail -n 1
}

# Azure gives the pre script timeoutInSeconds and does not kill it: it must cover the whole freeze.
azure_timeout() {
  local freeze_timeout seconds
  freeze_timeout=$(configured_freeze_timeout)
  freeze_timeout=${freeze_timeout:-$AZURE_DEFAULT_FREEZE_TIMEOUT}
  seconds=$((${freeze_timeout%%.*} + 1 + FREEZE_OVERHEAD_SECONDS))
  [ "$seconds" -ge "$AZURE_TIMEOUT_MINIMUM" ] || seconds=$AZURE_TIMEOUT_MINIMUM
  if [ "$seconds" -gt "$AZURE_TIMEOUT_MAXIMUM" ]; then
    warn "freeze_timeout $freeze_timeout needs more than Azure's largest timeoutInSeconds ($AZURE_TIMEOUT_MAXIMUM): lower freeze_timeout"
    seconds=$AZURE_TIMEOUT_MAXIMUM
  fi
  printf '%s\n' "$seconds"
}

azure_config() {
  cat <<EOF
{
    "pluginName": "ScriptRunner",
    "preScriptLocation": "$AZURE_PRE",
    "postScriptLocation": "$AZURE_POST",
    "preScriptParams": [],
    "postScriptParams": [],
    "preScriptNoOfRetries": 0,
    "postScriptNoOfRetries": 0,
    "timeoutInSeconds": $(azure_timeout),
    "continueBackupOnFailure": true,
    "fsFreezeEnabled": true
}
EOF
}

aws_document() {
  cat <<EOF
# $INSTALLED_MARK (install.sh --aws): an SSM Command document for Amazon Data Lifecycle
# Manager's pre and post scripts. Create it in the account with
#   aws ssm create-document --name MySQLSnapshotHook --document-type Command \\
#     --document-format YAML --content file://ssm-document.yaml
# and name it in the policy's pre/post scripts (custom SSM document). The policy's script timeout must
# exceed freeze_timeout + $FREEZE_OVERHEAD_SECONDS s (the default freeze_timeout under this document is 6 s).
schemaVersion: '2.2'
description: Holds a read lock on MySQL/MariaDB while Data Lifecycle Manager starts an EBS snapshot ($NAME).
parameters:
  executionId:
    type: String
    default: None
    description: (Required) The unique identifier of a pre and/or post execution, set by Data Lifecycle Manager.
    allowedPattern: ^(None|[a-fA-F0-9]{8}-[a-fA-F0-9]{4}-[a-fA-F0-9]{4}-[a-fA-F0-9]{4}-[a-fA-F0-9]{12})\$
  command:
    type: String
    default: dry-run
    description: (Required) pre-script (freeze), post-script (thaw) or dry-run (doctor, no lock).
    allowedValues:
      - pre-script
      - post-script
      - dry-run
mainSteps:
  - action: aws:runShellScript
    name: mysql_snapshot_hook
    precondition:
      StringEquals:
        - platformType
        - Linux
    inputs:
      runCommand:
        - |
          hook=$prefix/$AGENT_LINK_DIR/aws-hook
          case "{{ command }}" in
            pre-script) "\$hook" freeze; rc=\$? ;;
            post-script) "\$hook" thaw; rc=\$? ;;
            dry-run) $EXE doctor; rc=\$? ;;
            *) echo "unknown command: {{ command }}" >&2; rc=2 ;;
          esac
          # Exit status 194 makes the SSM agent reboot the instance.
          if [ "\$rc" -eq 194 ]; then rc=1; fi
          exit "\$rc"
EOF
}

install_agents() {
  local link entry target mode agent word kind file
  for link in "${agent_links[@]+"${agent_links[@]}"}"; do
    put_link "$link"
  done
  for entry in "${agent_scripts[@]+"${agent_scripts[@]}"}"; do
    IFS='|' read -r target mode agent word <<<"$entry"
    move_foreign_aside "$target"
    put_text "$target" "$mode" < <(wrapper_script "$agent" "$word")
  done
  for entry in "${agent_documents[@]+"${agent_documents[@]}"}"; do
    IFS='|' read -r target kind <<<"$entry"
    move_foreign_aside "$target"
    file=$(on_disk "$target")
    case $kind in
      azure-config)
        # An admin's change to the configuration we installed is kept; --force writes ours again.
        if in_old_manifest "$target" && [ -f "$file" ] && [ "$force" = 0 ] && ! azure_config | cmp -s - "$file"; then
          record "$target"
          say kept "$file (changed since it was installed; --force writes it again)"
          continue
        fi
        put_text "$target" 600 < <(azure_config)
        ;;
      aws-document) put_text "$target" 644 < <(aws_document) ;;
    esac
  done
}

# What each agent still needs from the admin.
agent_notes() {
  local agent cfg
  for agent in "${want_agents[@]+"${want_agents[@]}"}"; do
    case $agent in
      gcp)
        cfg=$(on_disk /etc/default/instance_configs.cfg)
        if ! { [ -f "$cfg" ] && awk '/^\[/{s=$0} s=="[Snapshots]" && /^[[:space:]]*enabled[[:space:]]*=[[:space:]]*true/{f=1} END{exit !f}' "$cfg"; }; then
          note "Google: set [Snapshots] enabled = true in /etc/default/instance_configs.cfg and restart google-guest-agent"
        fi
        note "Google: create snapshots with --guest-flush, or the guest agent runs no script"
        ;;
      azure) note "Azure: the backup policy must be application-consistent; $AZURE_CONFIG says timeoutInSeconds $(azure_timeout)" ;;
      veeam) note "Veeam: select $prefix/share/$NAME/veeam/pre-freeze.sh and post-thaw.sh in the job's guest processing (README: Veeam)" ;;
      aws) note "AWS: create the SSM document from $prefix/share/$NAME/aws/ssm-document.yaml (README: AWS)" ;;
    esac
  done
}

run_install() {
  local hooks=() hook entry
  [ "$want_backup_scripts_d" = 1 ] && hooks+=("$BACKUP_SCRIPTS_D_HOOK")
  local qemu
  qemu=$(qemu_dir)
  [ "$want_qemu" = 1 ] && hooks+=("$qemu/fsfreeze-hook.d/mysql")
  if [ "$want_vmware" = 1 ] || { [ "${#hooks[@]}" = 0 ] && [ "${#want_agents[@]}" = 0 ]; }; then
    hooks=("${LEGACY_HOOKS[@]}" "${hooks[@]+"${hooks[@]}"}")
  fi

  check_binary
  [ -f "$SCRIPT_DIR/config/$NAME.cnf" ] || die "$SCRIPT_DIR/config/$NAME.cnf is missing"
  [ -f "$SCRIPT_DIR/logrotate/$NAME" ] || die "$SCRIPT_DIR/logrotate/$NAME is missing"
  [ "$want_qemu" = 0 ] || [ -f "$SCRIPT_DIR/qemu/fsfreeze-hook" ] || die "$SCRIPT_DIR/qemu/fsfreeze-hook is missing"
  read_manifest
  plan_agents
  if ! preflight "${hooks[@]+"${hooks[@]}"}" "${agent_links[@]+"${agent_links[@]}"}" || ! preflight_agent_files; then
    printf '%s: nothing was changed. Run it again with --force to move such files aside to FILE%s\n' \
      "$PROGRAM" "$BACKUP_SUFFIX" >&2
    printf '%s: (%s --uninstall puts them back).\n' "$PROGRAM" "$PROGRAM" >&2
    exit 1
  fi
  if [ "$can_chown" = 0 ]; then
    note "not running as root: the files stay owned by uid $(id -u) (chown root:root them when packaging)"
  fi

  trap save_partial_manifest EXIT
  # Mode 700 and root-owned: some backup vendors' agents (Azure, Commvault/Nutanix) refuse to run a hook
  # that is not, and only root runs it anyway.
  put_file "$binary" "$EXE" 700
  for hook in "${hooks[@]+"${hooks[@]}"}"; do
    put_link "$hook"
  done
  if [ "$want_qemu" = 1 ]; then
    put_file "$SCRIPT_DIR/qemu/fsfreeze-hook" "$qemu/vmware-mysql-snapshot-fsfreeze-hook" 700
  fi
  install_agents
  put_config
  put_file "$SCRIPT_DIR/logrotate/$NAME" "$LOGROTATE" 644
  put_text "$TMPFILES" 644 <<EOF
# $NAME keeps its state, lock and socket here, on tmpfs (its run_dir).
d $RUN_DIR 0700 root root -
EOF

  ensure_dir "$(dirname -- "$MANIFEST")"

  # What an earlier install made and this one did not (another layout or prefix) goes.
  local index
  for ((index = ${#old_manifest[@]} - 1; index >= 0; index--)); do
    entry=${old_manifest[index]}
    in_list "$entry" "${new_manifest[@]}" && continue
    remove_entry "$entry" 'no longer installed'
    if is_real_dir "$(on_disk "$entry")"; then
      new_manifest=("$entry" "${new_manifest[@]}")
    fi
  done

  write_manifest
  if [ "$want_qemu" = 1 ]; then
    configure_qemu "$qemu"
  else
    unconfigure_qemu
  fi
  trap cleanup EXIT
  create_run_dir
  relabel_for_selinux

  if [ "${#hooks[@]}" -gt 0 ] && ! have_program vmtoolsd && ! have_program qemu-ga; then
    warn "neither open-vm-tools (vmtoolsd) nor qemu-guest-agent (qemu-ga) is installed on this machine: nothing calls the hook until one is"
  fi
  agent_notes
  local config
  config=$(on_disk "$CONFIG")
  if [ -f "$config" ] && ! grep -Eq '^[[:space:]]*(user|defaults[_-]file)[[:space:]]*=' "$config"; then
    note "set user and password (or defaults_file) in $CONFIG, then check it with: $NAME status"
  fi
}

# ---------------------------------------------------------------------------------------------- uninstall

# Puts back what --force moved aside from $1, if $1 is free again.
restore_backup() {
  local file
  file=$(on_disk "$1")
  if present "$1$BACKUP_SUFFIX" && ! present "$1"; then
    mv -T -- "$file$BACKUP_SUFFIX" "$file"
    say restored "$file (from $file$BACKUP_SUFFIX)"
  fi
}

# Removes the recorded path $1: a symlink only if it is still ours, a directory only if it is empty, the
# configuration only with --purge.
remove_entry() {
  local target=$1 reason=${2:-} file
  file=$(on_disk "$target")
  if [ -L "$file" ]; then
    if is_our_link "$target"; then
      rm -f -- "$file"
      say removed "$file${reason:+ ($reason)}"
    else
      say kept "$file (now points at $(readlink -- "$file"), not at $NAME)"
    fi
  elif is_real_dir "$file"; then
    if rmdir -- "$file" 2>/dev/null; then
      say removed "$file/"
    fi
  elif [ -e "$file" ]; then
    if [ "$target" = "$CONFIG" ] && [ "$purge" = 0 ]; then
      say kept "$file (--purge removes it)"
    else
      rm -f -- "$file"
      say removed "$file${reason:+ ($reason)}"
    fi
  fi
  restore_backup "$target"
}

# A lock holder is running: removing the hooks now would leave the snapshot without its thaw.
holder_pid() {
  [ -z "$DESTDIR" ] || return 1
  local entry argv0
  for entry in /proc/[0-9]*; do
    argv0=
    { IFS= read -r -d '' argv0 <"$entry/cmdline"; } 2>/dev/null || true
    if [ "${argv0##*/}" = "$HOLDER_NAME" ]; then
      printf '%s\n' "${entry#/proc/}"
      return 0
    fi
  done
  return 1
}

run_uninstall() {
  local entries=() entry pid index
  if pid=$(holder_pid); then
    die "a lock holder is running (pid $pid): a snapshot is in progress; wait for it, or release it with $NAME thaw, then run this again"
  fi
  read_manifest
  if [ "${#old_manifest[@]}" -gt 0 ]; then
    entries=("${old_manifest[@]}")
  else
    note "no manifest ($(on_disk "$MANIFEST")): removing our links and files at the default places"
    entries=("$EXE" "${ALL_HOOKS[@]}" "${QEMU_DISPATCHERS[@]}" "$LOGROTATE" "$TMPFILES")
    for entry in gcp azure nutanix veeam aws; do
      entries+=("$prefix/$AGENT_LINK_DIR/$entry-hook")
    done
    # Files at the other agents' paths are removed only when they say we installed them (our plugin
    # JSON, which has no room for a comment, names our pre script).
    for entry in "${AGENT_FILES[@]}"; do
      if [ -f "$(on_disk "$entry")" ] && grep -q -e "$INSTALLED_MARK" -e "$AZURE_PRE" "$(on_disk "$entry")" 2>/dev/null; then
        entries+=("$entry")
      fi
    done
  fi
  if [ "$purge" = 1 ]; then
    in_list "$CONFIG" "${entries[@]}" || entries+=("$CONFIG")
  fi

  unconfigure_qemu
  # Directories last, once the files in them (the manifest too) are gone.
  for ((index = ${#entries[@]} - 1; index >= 0; index--)); do
    if ! is_real_dir "$(on_disk "${entries[index]}")"; then
      remove_entry "${entries[index]}"
    fi
  done
  # Anything else --force moved aside.
  for entry in "${ALL_HOOKS[@]}" "${AGENT_FILES[@]}" "$EXE" "$LOGROTATE" "$TMPFILES"; do
    restore_backup "$entry"
  done

  if [ "$purge" = 1 ]; then
    local log run_dir
    for log in "$(on_disk "$LOG_FILE")"*; do
      if [ -e "$log" ] || [ -L "$log" ]; then
        rm -f -- "$log"
        say removed "$log"
      fi
    done
    run_dir=$(on_disk "$RUN_DIR")
    if [ -L "$run_dir" ]; then
      rm -f -- "$run_dir"
      say removed "$run_dir"
    elif [ -d "$run_dir" ]; then
      rm -rf -- "$run_dir"
      say removed "$run_dir/"
    fi
  fi

  local manifest
  manifest=$(on_disk "$MANIFEST")
  if [ -f "$manifest" ]; then
    rm -f -- "$manifest"
    say removed "$manifest"
  fi
  for ((index = ${#entries[@]} - 1; index >= 0; index--)); do
    if is_real_dir "$(on_disk "${entries[index]}")"; then
      remove_entry "${entries[index]}"
    fi
  done
  if rmdir -- "$(dirname -- "$manifest")" 2>/dev/null; then
    say removed "$(dirname -- "$manifest")/"
  fi
}

if [ "$uninstall" = 1 ]; then
  run_uninstall
else
  run_install
fi
