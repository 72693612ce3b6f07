#!/bin/sh
# What many CI actions do: a full depth-1 clone with checkout of every file, sed, commit, push.
#
#   TOKEN=... bench/naive.sh URL BRANCH FILE=TAG [FILE=TAG ...]
set -eu
url=$1 branch=$2
shift 2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
auth=$(printf 'x-access-token:%s' "$TOKEN" | base64 | tr -d '\n')
export GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=http.extraHeader
export GIT_CONFIG_VALUE_0="Authorization: Basic $auth"
git clone --quiet --depth 1 --single-branch -b "$branch" "$url" "$dir/repo"
cd "$dir/repo"
for spec; do
    sed -i "s/^  tag: .*/  tag: ${spec#*=}/" "${spec%%=*}"
done
git commit --quiet -am "update($branch): $*"
git push --quiet origin "HEAD:refs/heads/$branch"
