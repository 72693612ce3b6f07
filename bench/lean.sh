#!/bin/sh
# The least plain git can do to pin image tags on an environment branch: a shallow, blobless,
# single-branch clone without checkout, a sparse checkout of just the files to edit, sed, commit,
# push. The token travels as an http.extraHeader through GIT_CONFIG_COUNT (never argv or a URL).
#
#   TOKEN=... bench/lean.sh URL BRANCH FILE=TAG [FILE=TAG ...]
#
# FILE is a values.yaml whose `  tag:` line (image.tag) gets TAG. Does not read promoter.yaml.
set -eu
url=$1 branch=$2
shift 2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
auth=$(printf 'x-access-token:%s' "$TOKEN" | base64 | tr -d '\n')
export GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=http.extraHeader
export GIT_CONFIG_VALUE_0="Authorization: Basic $auth"
git clone --quiet --depth 1 --single-branch -b "$branch" --filter=blob:none --no-checkout \
    "$url" "$dir/repo"
cd "$dir/repo"
paths=
for spec; do paths="$paths /${spec%%=*}"; done
# shellcheck disable=SC2086 # one word per path, on purpose
git sparse-checkout set --no-cone $paths
git checkout --quiet
for spec; do
    sed -i "s/^  tag: .*/  tag: ${spec#*=}/" "${spec%%=*}"
done
git commit --quiet -am "update($branch): $*"
git push --quiet origin "HEAD:refs/heads/$branch"
