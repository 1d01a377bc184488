# shellcheck shell=bash
# The body of a DSO member's EC2 user data: deploy/ec2.sh writes the cluster's values above it.
# It runs once, as root, at the instance's first boot, and installs nothing: Amazon Linux 2023
# comes with the aws CLI, curl and systemd. The secrets (token, TLS key) come from SSM
# Parameter Store straight into files only the `dso` user can read; they are never part of the
# user data, which anyone allowed ec2:DescribeInstanceAttribute can read.
: "${CLUSTER:?}" "${REGION:?}" "${BUCKET:?}" "${PORT:?}" "${ADVERTISED_ADDRESS:?}"
set -euo pipefail
export AWS_DEFAULT_REGION=$REGION
config=/etc/crucial

id -u dso >/dev/null 2>&1 || useradd --system --no-create-home --shell /sbin/nologin dso
install -d -m 750 -o root -g dso "$config"

# Right after deploy/ec2.sh made the instance's role, the first calls can find no credentials
# or be denied (IAM has not caught up), and with --bind vpc a fresh NAT gateway or endpoint may
# not route yet: each fetch is tried again this often, this far apart (15 minutes in all), each
# failure logged to the console (cloud-init copies this script's output there).
readonly FETCH_ATTEMPTS=90
readonly FETCH_DELAY_SECONDS=10

# fetch WHAT COMMAND...: runs COMMAND until it succeeds; after FETCH_ATTEMPTS failures, stops
# the user data with a message saying what could not be fetched.
fetch() {
  local what=$1 attempt
  shift
  for ((attempt = 1; attempt <= FETCH_ATTEMPTS; attempt++)); do
    "$@" && return 0
    echo "crucial: fetching $what failed ($attempt/$FETCH_ATTEMPTS), trying again in ${FETCH_DELAY_SECONDS}s" >&2
    [ "$attempt" -eq "$FETCH_ATTEMPTS" ] || sleep "$FETCH_DELAY_SECONDS"
  done
  echo "crucial: gave up fetching $what after $FETCH_ATTEMPTS attempts: check the instance profile's role, and that the subnet reaches S3 and SSM (a public IP, a NAT gateway or VPC endpoints); dso-server is not installed" >&2
  exit 1
}

# get_secret NAME FILE: the SecureString /crucial/$CLUSTER/NAME into FILE, created mode 600.
# One command (a subshell), so that fetch sees its failure whole.
get_secret() {
  (umask 077 && aws ssm get-parameter --name "/crucial/$CLUSTER/$1" --with-decryption \
    --query Parameter.Value --output text >"$2")
}

# get_object NAME FILE: s3://$BUCKET/$CLUSTER/NAME into FILE.
get_object() {
  aws s3 cp --only-show-errors "s3://$BUCKET/$CLUSTER/$1" "$2"
}

# secret NAME FILE: the secret NAME into FILE, owned by dso (dso-server refuses a token file that
# other users could read or change).
secret() {
  fetch "SSM parameter /crucial/$CLUSTER/$1" get_secret "$1" "$2"
  chown dso:dso "$2"
}
secret token "$config/token"
secret tls-key "$config/tls.key"

for file in tls.crt ca.crt dso-server.toml; do
  fetch "s3://$BUCKET/$CLUSTER/$file" get_object "$file" "$config/$file"
  chmod 644 "$config/$file"
done
fetch "s3://$BUCKET/$CLUSTER/dso-server" get_object dso-server /usr/local/bin/dso-server
chmod 755 /usr/local/bin/dso-server

# Each start asks IMDSv2 (the instance refuses v1) for the address to advertise (local-ipv4 or
# public-ipv4, as ADVERTISED_ADDRESS says): a public IP changes when an instance stops and starts.
cat >/usr/local/bin/crucial-dso-start <<START
#!/bin/bash
set -euo pipefail
imds=http://169.254.169.254/latest
session=\$(curl -sSf -X PUT "\$imds/api/token" -H 'X-aws-ec2-metadata-token-ttl-seconds: 60')
address=\$(curl -sSf -H "X-aws-ec2-metadata-token: \$session" "\$imds/meta-data/$ADVERTISED_ADDRESS")
exec /usr/local/bin/dso-server --config $config/dso-server.toml --advertise "\$address:$PORT"
START
chmod 755 /usr/local/bin/crucial-dso-start

cat >/etc/systemd/system/dso-server.service <<UNIT
[Unit]
Description=Crucial-rs DSO server (cluster $CLUSTER)
Wants=network-online.target
After=network-online.target

[Service]
User=dso
Group=dso
Environment=AWS_REGION=$REGION
ExecStart=/usr/local/bin/crucial-dso-start
Restart=on-failure
RestartSec=5
KillSignal=SIGTERM
TimeoutStopSec=90
LimitNOFILE=65536
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes

[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable --now dso-server.service
