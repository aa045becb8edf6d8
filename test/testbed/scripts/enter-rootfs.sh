#!/bin/sh
# Starts one container of a pod inside its image's filesystem, the way a container runtime
# would but with no daemon: run under `unshare --mount --propagation private`, it mounts an
# overlay of the image's root filesystem (writes go to the container's own folder), /proc, a
# small /dev, the pod's volumes from a plan file, optionally makes the root read-only, then
# chroots, changes directory and user, and execs the entrypoint (same pid: signals reach it).
# The network namespace is the host's, as with hostNetwork: the pod reaches loopback services.
# The process environment is the container's: this script's own variables are not exported.
#   usage: enter-rootfs.sh <image rootfs> <container dir> <read-only 0|1> <uid> <gid> <workdir> <mount plan> -- argv...
#   mount plan: one "<host path><TAB><container path>" a line; a file is bind-mounted onto a file.
set -eu
__tb_lower=$1 __tb_dir=$2 __tb_ro=$3 __tb_uid=$4 __tb_gid=$5 __tb_wd=$6 __tb_plan=$7
shift 7
[ "$1" = -- ] && shift
__tb_path=${PATH-}
PATH=/usr/sbin:/usr/bin:/sbin:/bin
__tb_root=$__tb_dir/root
mkdir -p "$__tb_dir/upper" "$__tb_dir/work" "$__tb_root"
mount -t overlay overlay -o "lowerdir=$__tb_lower,upperdir=$__tb_dir/upper,workdir=$__tb_dir/work" "$__tb_root"
mkdir -p "$__tb_root/proc" "$__tb_root/dev" "$__tb_root/tmp"
# Mount points first, while the root is writable (a runtime creates them the same way).
__tb_tab=$(printf '\t')
while IFS="$__tb_tab" read -r __tb_src __tb_dst; do
  case $__tb_dst in /dev/*) continue ;; esac
  if [ -d "$__tb_src" ]; then mkdir -p "$__tb_root$__tb_dst"; else mkdir -p "$(dirname "$__tb_root$__tb_dst")" && { [ -e "$__tb_root$__tb_dst" ] || : >"$__tb_root$__tb_dst"; }; fi
done <"$__tb_plan"
if [ "$__tb_ro" = 1 ]; then
  mount --bind "$__tb_root" "$__tb_root"
  mount -o remount,bind,ro "$__tb_root"
fi
mount -t proc -o nosuid,nodev,noexec proc "$__tb_root/proc"
mount -t tmpfs -o nosuid,mode=755,size=65536k tmpfs "$__tb_root/dev"
for __tb_d in null zero full random urandom tty; do
  : >"$__tb_root/dev/$__tb_d" && mount --bind "/dev/$__tb_d" "$__tb_root/dev/$__tb_d"
done
mkdir "$__tb_root/dev/shm" "$__tb_root/dev/pts"
mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs "$__tb_root/dev/shm"
ln -s /proc/self/fd "$__tb_root/dev/fd" && ln -s /proc/self/fd/0 "$__tb_root/dev/stdin"
ln -s /proc/self/fd/1 "$__tb_root/dev/stdout" && ln -s /proc/self/fd/2 "$__tb_root/dev/stderr"
while IFS="$__tb_tab" read -r __tb_src __tb_dst; do
  if [ -d "$__tb_src" ]; then mkdir -p "$__tb_root$__tb_dst" 2>/dev/null || true; else { [ -e "$__tb_root$__tb_dst" ] || : >"$__tb_root$__tb_dst"; } 2>/dev/null || true; fi
  mount --bind "$__tb_src" "$__tb_root$__tb_dst"
done <"$__tb_plan"
PATH=$__tb_path
exec /usr/bin/unshare --root="$__tb_root" --wd="$__tb_wd" --setgid "$__tb_gid" --setuid "$__tb_uid" -- "$@"
