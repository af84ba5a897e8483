# Sourced by scripts/arm64/kernel.sh and scripts/migrate/kernel.sh: finds
# Debian's kernel package for a test guest, fetches and unpacks it on
# first use, checks its config, and prints the path of its image.
#
# The package is the one the meta-package $meta depends on (its ABI number
# changes with each update), downloaded with apt-get download and unpacked
# with dpkg -x, not installed, under $cache/PACKAGE/. The modules listed in
# $modules (paths under lib/modules/VERSION/) are kept flat in
# $cache/PACKAGE/modules, with their order (a module after those it needs)
# in modules/order: the guest's init loads them in that order.
#
# Set before sourcing: debarch (arm64, amd64), meta, cache, modules,
# config_opts (CONFIG_ options that must be =y), caller (for messages).
# Run from the repository's root.
debian_kernel() {
  local pkg dir tmp m config opt want="$meta"
  [ "$debarch" = "$(dpkg --print-architecture)" ] || want="$meta:$debarch"
  pkg=$(apt-cache depends "$want" 2>/dev/null |
    sed -n 's/^ *Depends: \(linux-image-[^:]*\).*/\1/p' | head -n1)
  if [ -z "$pkg" ]; then
    # No package lists for it: use what an earlier run unpacked, if any.
    pkg=$(ls "$cache" 2>/dev/null | grep '^linux-image-' | sort -V | tail -n1 || true)
    if [ -z "$pkg" ]; then
      echo "$caller: cannot resolve $want; run: apt-get update (for another architecture first: dpkg --add-architecture $debarch)" >&2
      return 1
    fi
  fi
  dir=$cache/$pkg
  if ! debian_kernel_unpacked "$dir"; then
    mkdir -p "$cache"
    tmp=$(mktemp -d "$cache/.tmp.XXXXXX")
    trap "rm -rf '$tmp'" EXIT
    echo "$caller: fetching $pkg:$debarch" >&2
    (cd "$tmp" && apt-get download -q -o APT::Sandbox::User=root "$pkg:$debarch" >&2)
    dpkg -x "$tmp"/"$pkg"_*_"$debarch".deb "$tmp/root"
    rm -rf "$dir"
    mkdir -p "$dir"
    mv "$tmp/root/boot" "$dir/boot"
    mkdir -p "$dir/modules"
    for m in $modules; do
      cp "$tmp"/root/lib/modules/*/"$m" "$dir/modules/"
    done
    rm -rf "$tmp"
    trap - EXIT
  fi
  for m in $modules; do basename "$m"; done >"$dir/modules/order"
  config=$(ls "$dir"/boot/config-* | head -n1)
  for opt in $config_opts; do
    if ! grep -qx "CONFIG_$opt=y" "$config"; then
      echo "$caller: $pkg lacks CONFIG_$opt=y (see $config)" >&2
      return 1
    fi
  done
  ls "$dir"/boot/vmlinuz-* | head -n1
}

debian_kernel_unpacked() {
  local m
  ls "$1"/boot/vmlinuz-* >/dev/null 2>&1 || return 1
  for m in $modules; do
    [ -e "$1/modules/$(basename "$m")" ] || return 1
  done
}
