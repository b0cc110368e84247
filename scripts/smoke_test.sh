#!/usr/bin/env bash
# Post-deploy smoke test against any running gateway (docs/DEPLOYMENT.md):
#   scripts/smoke_test.sh URL KEY [--webhook-url URL] [--timeout SECONDS]
# Checks health and readiness, authentication, a lead qualified end to end with its result
# readable, and a signed test webhook delivered; exits non-zero when one fails.
# It runs `jorge smoke`: the `jorge` on PATH (the image's, or an activated virtualenv's), else
# the repository's ./jorge (which installs the project on first use).
set -euo pipefail
if [ "$#" -lt 2 ]; then
    echo "usage: $0 URL API_KEY [--webhook-url URL] [--timeout SECONDS]" >&2
    exit 2
fi
if command -v jorge >/dev/null 2>&1; then
    exec jorge smoke "$@"
fi
exec "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/jorge" smoke "$@"
