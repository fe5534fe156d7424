#!/usr/bin/env sh
# shellcheck disable=SC2034
# acme.sh DNS API plugin for zonedrop: the challenge TXT record is handed to
# `zonedrop add` / `zonedrop del`, which write a fragment into a drop
# directory; no DNS API key is involved. Install: copy this file to
# ~/.acme.sh/dnsapi/dns_zonedrop.sh, then
#   ZONEDROP_DROP=/var/db/zonedrop/drop acme.sh --issue --dns dns_zonedrop -d example.org
# Settings (environment; acme.sh remembers them for renewals):
#   ZONEDROP_BIN     the zonedrop binary (default: zonedrop on PATH)
#   ZONEDROP_DROP    the drop directory (or use ZONEDROP_CONFIG)
#   ZONEDROP_CONFIG  a zonedrop.toml with [hook] drop
# acme.sh sources this file in a subshell for each call, so the two
# functions keep no state between them: each passes everything it needs.

dns_zonedrop_info='zonedrop: challenges written to a drop directory
Docs: the zonedrop README, "Hook lines for each ACME client"
Options:
 ZONEDROP_BIN zonedrop binary. Optional.
 ZONEDROP_DROP Drop directory. Optional when ZONEDROP_CONFIG gives one.
 ZONEDROP_CONFIG zonedrop.toml. Optional.
'

# Usage: dns_zonedrop_add _acme-challenge.www.example.org "XKrxpRBosdIKFzxW_CT3KLZNf6q0HG9i01zxXp5CPBs"
dns_zonedrop_add() {
  _zonedrop_settings
  _zonedrop_run add -- "$1" "$2"
}

# Usage: dns_zonedrop_rm _acme-challenge.www.example.org "XKrxpRBosdIKFzxW_CT3KLZNf6q0HG9i01zxXp5CPBs"
dns_zonedrop_rm() {
  _zonedrop_settings
  _zonedrop_run del -- "$1" "$2"
}

# Read the settings from the environment or acme.sh's saved account
# config, and save them for renewals (only inside acme.sh).
_zonedrop_settings() {
  if command -v _readaccountconf_mutable >/dev/null 2>&1; then
    ZONEDROP_BIN="${ZONEDROP_BIN:-$(_readaccountconf_mutable ZONEDROP_BIN)}"
    ZONEDROP_DROP="${ZONEDROP_DROP:-$(_readaccountconf_mutable ZONEDROP_DROP)}"
    ZONEDROP_CONFIG="${ZONEDROP_CONFIG:-$(_readaccountconf_mutable ZONEDROP_CONFIG)}"
    [ -n "$ZONEDROP_BIN" ] && _saveaccountconf_mutable ZONEDROP_BIN "$ZONEDROP_BIN"
    [ -n "$ZONEDROP_DROP" ] && _saveaccountconf_mutable ZONEDROP_DROP "$ZONEDROP_DROP"
    [ -n "$ZONEDROP_CONFIG" ] && _saveaccountconf_mutable ZONEDROP_CONFIG "$ZONEDROP_CONFIG"
  fi
  return 0
}

_zonedrop_run() {
  _zd_bin="${ZONEDROP_BIN:-zonedrop}"
  if [ -n "$ZONEDROP_DROP" ]; then
    export ZONEDROP_DROP
  fi
  if [ -n "$ZONEDROP_CONFIG" ]; then
    export ZONEDROP_CONFIG
  fi
  if ! "$_zd_bin" "$@"; then
    if command -v _err >/dev/null 2>&1; then
      _err "zonedrop $1 $3 failed"
    fi
    return 1
  fi
  return 0
}
