#!/bin/sh
# A GOAUTH command (`go help goauth`) for the walkthrough: it tells the go command to send
# "Authorization: Bearer $TEAM_TOKEN" with every request to modgate. A real one would read the
# token from a secret store or a credential helper instead of the environment.
printf 'https://127.0.0.1:%s/\n\nAuthorization: Bearer %s\n\n' "${PORT:-8443}" "$TEAM_TOKEN"
