#!/usr/bin/env bash
# A Crucial-rs DSO cluster on EC2: `up` creates what is missing, `status` shows it, `destroy`
# deletes everything `up` made. Run `deploy/ec2.sh --help` for the options.
set -euo pipefail
# Every file this script writes (secrets, certificates) is for its user alone.
umask 077

SCRIPT_NAME=deploy/ec2.sh
DEPLOY_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=deploy/lib/aws.sh
source "$DEPLOY_DIR/lib/aws.sh"

# The name in the servers' certificate, which clients and members verify whatever the address
# (dso-server's default --tls-name).
readonly CERT_NAME=crucial-dso
readonly CERT_DAYS=397
readonly CA_DAYS=1826
readonly MEMBERS_MAX=32
readonly METRICS_BIND=127.0.0.1:9100
# Where the members' files go on the instances (the user data and settings file agree).
readonly MEMBER_CONFIG_DIR=/etc/crucial
# EC2 refuses an instance profile made a few seconds earlier with these words.
readonly PROFILE_NOT_READY='iamInstanceProfile|Invalid IAM Instance Profile'

usage() {
  cat <<'EOF'
Usage: deploy/ec2.sh up|status|destroy [options]

A Crucial-rs DSO cluster on EC2: members running dso-server under systemd on Amazon Linux
2023, finding each other through S3 discovery, requiring a token and TLS from every client
and member. Everything made is tagged crucial:cluster=NAME and found again by that tag.

  up        create what is missing: token, CA and server certificate (local state dir), bucket,
            SSM parameters, IAM role and instance profile, security group, and members up to
            --members (up never removes members); ends with what clients need
  status    the members, the security group's rules, what discovery holds, CRUCIAL_DSO
  destroy   terminate the members and delete everything up made; then the local state dir,
            if it found anything of the cluster in the region (or with --forget-state)

Options:
  --cluster NAME          cluster name (default crucial): names, paths and tags derive from it
  --region REGION         default: AWS_REGION, AWS_DEFAULT_REGION or the CLI profile's region
  --members N             members wanted (default 3, at most 32)
  --rf N                  copies of each key (default min(3, members))
  --arch arm64|x86_64     default arm64
  --instance-type TYPE    default c7g.large (arm64) or c7i.large (x86_64)
  --ami ID                default: the latest Amazon Linux 2023 for --arch, from the SSM public
                          parameter /aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-ARCH
  --vpc ID                default: the VPC of --subnet, else the default VPC
  --subnet ID[,ID...]     members are spread over these in turn (default: the default VPC's
                          default subnets in the zones that offer the instance type)
  --bind public|private|vpc
                          which address members advertise to clients and each other (default
                          private); they listen on 0.0.0.0:PORT either way:
                            public   the public IP (clients outside the VPC); the group then
                                     also allows each running member's public IP, set
                                     again on every up
                            private  the private IP; instances still get a public IP for their
                                     own calls to S3 and SSM
                            vpc      the private IP, and no public IP: the subnets must reach S3
                                     and SSM through a NAT gateway or VPC endpoints; clients are
                                     Lambda functions (or hosts) in the VPC
  --port PORT             DSO port (default 11222)
  --allow-cidr CIDR       IPv4 range allowed to the DSO port (repeatable)
  --allow-sg SG_ID        security group allowed to the DSO port, e.g. the Lambda functions'
                          (repeatable); up needs at least one --allow-cidr or --allow-sg. The
                          group opens nothing else (no SSH); members reach each other through it
  --bucket NAME           bucket for the binary, certificates, settings and discovery (default
                          crucial-CLUSTER-ACCOUNT-REGION); created and tagged if missing, and then
                          deleted by destroy once empty; a bucket that existed before is kept
  --binary PATH           dso-server built for --arch with the s3 feature (default
                          target/release/dso-server), e.g. for arm64 on an x86_64 machine:
                            cargo zigbuild --release -p crucial-dso --features s3 --bin dso-server \
                              --target aarch64-unknown-linux-gnu.2.34
                          (".2.34": Amazon Linux 2023's glibc; the binary is then under
                          target/aarch64-unknown-linux-gnu/release/)
  --state-dir DIR         token, CA, certificates, settings, user data (default
                          deploy/.state/CLUSTER-REGION, mode 700, git-ignored)
  --forget-state          destroy: remove the state dir even when nothing tagged for the cluster
                          is left in the region (without it, such a destroy keeps the state dir:
                          a wrong --region or --cluster must not lose a live cluster's CA)
  --plan                  print every AWS call, one per line, instead of making it; nothing is
                          written or called. <...> stands for what a call would answer; up plans
                          for a cluster that does not exist yet, status and destroy for one that does
  -h, --help              this text

Secrets: the token and the server's TLS key go to SSM Parameter Store as SecureString
(/crucial/CLUSTER/token, /crucial/CLUSTER/tls-key), passed to the CLI as file:// paths so that
they appear in no command line; the instances read them at boot. AWS credentials come from the
standard chain and are written nowhere.
EOF
}

# Settings, from the command line.
COMMAND=""
CLUSTER=crucial
REGION=""
MEMBERS=3
RF=""
ARCH=arm64
INSTANCE_TYPE=""
AMI=""
VPC=""
SUBNETS=()
BIND=private
PORT=11222
ALLOW_CIDRS=()
ALLOW_GROUPS=()
BUCKET=""
BINARY=""
STATE_DIR=""
FORGET_STATE=false
# Set by destroy when it finds anything tagged for the cluster.
FOUND=false

parse_args() {
  local value
  case ${1:-} in
    up | status | destroy) COMMAND=$1 ;;
    -h | --help) usage && exit 0 ;;
    "") usage_error "a command is needed: up, status or destroy" ;;
    *) usage_error "unknown command '$1': up, status or destroy" ;;
  esac
  shift
  while [ $# -gt 0 ]; do
    case $1 in
      --cluster) CLUSTER=$(option_value "$@") ;;
      --region) REGION=$(option_value "$@") ;;
      --members) MEMBERS=$(option_value "$@") ;;
      --rf) RF=$(option_value "$@") ;;
      --arch) ARCH=$(option_value "$@") ;;
      --instance-type) INSTANCE_TYPE=$(option_value "$@") ;;
      --ami) AMI=$(option_value "$@") ;;
      --vpc) VPC=$(option_value "$@") ;;
      --subnet)
        value=$(option_value "$@")
        IFS=, read -ra SUBNETS <<<"$value"
        ;;
      --bind) BIND=$(option_value "$@") ;;
      --port) PORT=$(option_value "$@") ;;
      --allow-cidr)
        value=$(option_value "$@")
        ALLOW_CIDRS+=("$value")
        ;;
      --allow-sg)
        value=$(option_value "$@")
        ALLOW_GROUPS+=("$value")
        ;;
      --bucket) BUCKET=$(option_value "$@") ;;
      --binary) BINARY=$(option_value "$@") ;;
      --state-dir) STATE_DIR=$(option_value "$@") ;;
      --forget-state) FORGET_STATE=true && shift && continue ;;
      --plan) PLAN=true && shift && continue ;;
      -h | --help) usage && exit 0 ;;
      *) usage_error "unknown option '$1'" ;;
    esac
    shift 2
  done
}

validate_args() {
  local item
  check_cluster_name "$CLUSTER"
  check_number --members "$MEMBERS" 1 "$MEMBERS_MAX"
  RF=${RF:-$((MEMBERS < 3 ? MEMBERS : 3))}
  check_number --rf "$RF" 1 "$MEMBERS"
  check_number --port "$PORT" 1024 65535
  check_format --bind "$BIND" '^(public|private|vpc)$' "public, private or vpc"
  check_format --arch "$ARCH" '^(arm64|x86_64)$' "arm64 or x86_64"
  [ -n "$INSTANCE_TYPE" ] || INSTANCE_TYPE=$([ "$ARCH" = arm64 ] && echo c7g.large || echo c7i.large)
  check_format --instance-type "$INSTANCE_TYPE" '^[a-z0-9-]+\.[a-z0-9]+$' "an instance type such as c7g.large"
  [ -z "$AMI" ] || check_format --ami "$AMI" '^ami-[0-9a-f]+$' "an AMI id"
  [ -z "$VPC" ] || check_format --vpc "$VPC" '^vpc-[0-9a-f]+$' "a VPC id"
  for item in "${SUBNETS[@]}"; do check_format --subnet "$item" '^subnet-[0-9a-f]+$' "subnet ids"; done
  for item in "${ALLOW_CIDRS[@]}"; do
    check_format --allow-cidr "$item" '^([0-9]{1,3}\.){3}[0-9]{1,3}/[0-9]{1,2}$' "an IPv4 CIDR such as 10.0.0.0/16"
  done
  for item in "${ALLOW_GROUPS[@]}"; do check_format --allow-sg "$item" '^sg-[0-9a-f]+$' "a security group id"; done
  [ -z "$BUCKET" ] || check_format --bucket "$BUCKET" '^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$' "an S3 bucket name"
  if [ "$COMMAND" = up ] && [ ${#ALLOW_CIDRS[@]} -eq 0 ] && [ ${#ALLOW_GROUPS[@]} -eq 0 ]; then
    usage_error "up needs --allow-cidr or --allow-sg: who may reach the DSO port"
  fi
  if [ -n "$VPC" ] && [ ${#SUBNETS[@]} -eq 0 ]; then
    usage_error "--vpc needs --subnet: which of its subnets the members go to"
  fi
  BINARY=${BINARY:-$(dirname "$DEPLOY_DIR")/target/release/dso-server}
}

# Names derived from the cluster's (and the region's).
set_names() {
  # A cluster of the same name in another region has its own token and CA.
  STATE_DIR=${STATE_DIR:-$DEPLOY_DIR/.state/$CLUSTER-$REGION}
  NAME=crucial-$CLUSTER-dso
  # IAM is global, the rest regional: a cluster of the same name in another region has roles
  # of its own.
  ROLE_NAME=$NAME-$REGION
  TOKEN_PARAMETER=/crucial/$CLUSTER/token
  KEY_PARAMETER=/crucial/$CLUSTER/tls-key
  UPLOAD_DIR=$STATE_DIR/upload
}

# --- lookups ---------------------------------------------------------------------------------

# The cluster's members that are not terminated, one per line:
# ID STATE PRIVATE-IP PUBLIC-IP BIND PORT (None where an instance has no such address).
find_members() {
  aws_query "$(assumed "<instance-id> running <private-ip> <public-ip> $BIND <port>")" \
    ec2 describe-instances \
    --filters "Name=tag:$CLUSTER_TAG,Values=$CLUSTER" Name=instance-state-name,Values=pending,running,stopping,stopped \
    --query "Reservations[].Instances[].[InstanceId,State.Name,PrivateIpAddress,PublicIpAddress,Tags[?Key=='crucial:bind']|[0].Value,Tags[?Key=='crucial:port']|[0].Value]" \
    --output text
}

# The cluster's security group: "GROUP-ID VPC-ID BUCKET", or nothing.
find_group() {
  aws_query "$(assumed "<sg-id> <vpc-id> <bucket>")" ec2 describe-security-groups \
    --filters "Name=tag:$CLUSTER_TAG,Values=$CLUSTER" \
    --query "SecurityGroups[0].[GroupId,VpcId,Tags[?Key=='crucial:bucket']|[0].Value]" --output text
}

# The instance profile ROLE_NAME: "NAME PATH ROLE" (ROLE None when it has none), or nothing.
find_instance_profile() {
  aws_find '\(NoSuchEntity\)' "$(assumed "$ROLE_NAME $IAM_PATH $ROLE_NAME")" iam get-instance-profile \
    --instance-profile-name "$ROLE_NAME" \
    --query 'InstanceProfile.[InstanceProfileName,Path,Roles[0].RoleName]' --output text
}

# The name of a bucket tagged for the cluster, or nothing: where destroy looks when the
# security group, which names the bucket, is gone. The listing is paged, and with text output
# the CLI answers page by page, hence every ARN, not `[0]`.
find_tagged_bucket() {
  local arns arn
  arns=$(aws_query "$(assumed "arn:aws:s3:::<bucket>")" resourcegroupstaggingapi get-resources \
    --resource-type-filters s3 --tag-filters "Key=$CLUSTER_TAG,Values=$CLUSTER" \
    --query 'ResourceTagMappingList[].ResourceARN' --output text)
  for arn in $arns; do
    # arn:aws:s3:::NAME (a bucket name has no colon).
    [ "$arn" = None ] || {
      printf '%s' "${arn##*:}"
      return 0
    }
  done
}

# The cluster tag's value on bucket $1, asked of the bucket itself; nothing when it has no
# tags or does not exist. Under --plan, this cluster.
bucket_owner() {
  aws_find '\((NoSuchTagSet|NoSuchBucket)\)' "$(assumed "$CLUSTER")" s3api get-bucket-tagging \
    --bucket "$1" --query "TagSet[?Key=='$CLUSTER_TAG'].Value | [0]" --output text
}

# Ingress rules of group $1, one per line: RULE-ID PROTOCOL FROM-PORT TO-PORT CIDR GROUP.
ingress_rules() {
  aws_query "$(assumed "<rule-id> tcp $PORT $PORT <cidr> None")" ec2 describe-security-group-rules \
    --filters "Name=group-id,Values=$1" \
    --query 'SecurityGroupRules[?!IsEgress].[SecurityGroupRuleId,IpProtocol,FromPort,ToPort,CidrIpv4,ReferencedGroupInfo.GroupId]' \
    --output text
}

# The CRUCIAL_DSO value for members $1 (find_members' lines): the running members' advertised
# addresses, HOST:PORT,...
crucial_dso() {
  local id state private public bind port addresses=()
  while read -r id state private public bind port; do
    [ "$state" = running ] || continue
    if [ "$bind" = public ]; then addresses+=("$public:$port"); else addresses+=("$private:$port"); fi
  done <<<"$1"
  (IFS=, && printf '%s' "${addresses[*]}")
}

# --- local files -----------------------------------------------------------------------------

# The release binary must be an ELF executable for --arch: a wrong one would only show as a
# member that never starts.
check_binary() {
  local magic machine
  [ -f "$BINARY" ] || die "no dso-server at $BINARY: build it (see --help) or give --binary"
  magic=$(od -An -tx1 -N4 "$BINARY" | tr -d ' \n')
  machine=$(od -An -tx1 -j18 -N2 "$BINARY" | tr -d ' \n')
  [ "$magic" = 7f454c46 ] || die "$BINARY is not a Linux executable (ELF)"
  case $ARCH:$machine in
    arm64:b700 | x86_64:3e00) ;;
    *) die "$BINARY is not built for $ARCH (ELF machine $machine): see --help for a cross build" ;;
  esac
}

# The token, the cluster CA and the server certificate, made once and kept in the state dir.
# $1: whether SSM already holds the token (then secrets made here would not match the members').
make_secrets() {
  local stored=$1
  if [ "$PLAN" = true ]; then
    plan_note "would make, unless present, in $STATE_DIR (mode 700, files 600) with openssl: token, ca.key, ca.crt, tls.key, tls.crt (DNS name $CERT_NAME)"
    return 0
  fi
  if [ ! -s "$STATE_DIR/token" ] && [ -n "$stored" ]; then
    # Until the state dir was per region, it was deploy/.state/CLUSTER.
    die "SSM holds $TOKEN_PARAMETER but $STATE_DIR has no token: use the state dir of the machine that ran up first (--state-dir, or move an older deploy/.state/$CLUSTER there), or destroy the cluster"
  fi
  command -v openssl >/dev/null || die "openssl is needed to make the token and certificates"
  mkdir -p "$STATE_DIR"
  chmod 700 "$STATE_DIR"
  [ -s "$STATE_DIR/token" ] || make_token
  [ -s "$STATE_DIR/ca.crt" ] || make_ca
  [ -s "$STATE_DIR/tls.crt" ] || make_server_certificate
}

make_token() {
  step "making the cluster token"
  printf '%s' "$(openssl rand -hex 24)" >"$STATE_DIR/token"
}

# The openssl settings for the CA and server certificates (no reliance on the system's).
write_openssl_config() {
  cat >"$STATE_DIR/openssl.cnf" <<EOF
[req]
distinguished_name = dn
prompt = no
[dn]
CN = $CERT_NAME
[ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
# Members are each other's clients too.
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = DNS:$CERT_NAME
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
}

make_ca() {
  step "making the cluster CA ($CA_DAYS days)"
  write_openssl_config
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$STATE_DIR/ca.key" 2>/dev/null
  openssl req -x509 -new -config "$STATE_DIR/openssl.cnf" -extensions ca -key "$STATE_DIR/ca.key" \
    -subj "/CN=Crucial-rs DSO CA ($CLUSTER)" -days "$CA_DAYS" -sha256 -out "$STATE_DIR/ca.crt"
}

make_server_certificate() {
  step "making the server certificate for $CERT_NAME ($CERT_DAYS days)"
  write_openssl_config
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$STATE_DIR/tls.key" 2>/dev/null
  openssl req -new -config "$STATE_DIR/openssl.cnf" -key "$STATE_DIR/tls.key" \
    -subj "/CN=$CERT_NAME" -out "$STATE_DIR/tls.csr"
  openssl x509 -req -in "$STATE_DIR/tls.csr" -CA "$STATE_DIR/ca.crt" -CAkey "$STATE_DIR/ca.key" \
    -set_serial "0x$(openssl rand -hex 16)" -days "$CERT_DAYS" -sha256 \
    -extfile "$STATE_DIR/openssl.cnf" -extensions server -out "$STATE_DIR/tls.crt" 2>/dev/null
  rm -f "$STATE_DIR/tls.csr"
}

# What goes to s3://BUCKET/CLUSTER/: links to the binary and certificates, and the settings.
write_upload_dir() {
  plan_note "would write $UPLOAD_DIR: dso-server (link to $BINARY), tls.crt, ca.crt, dso-server.toml"
  [ "$PLAN" = false ] || return 0
  mkdir -p "$UPLOAD_DIR"
  ln -sfn "$(cd "$(dirname "$BINARY")" && pwd)/$(basename "$BINARY")" "$UPLOAD_DIR/dso-server"
  ln -sfn ../tls.crt "$UPLOAD_DIR/tls.crt"
  ln -sfn ../ca.crt "$UPLOAD_DIR/ca.crt"
  write_settings >"$UPLOAD_DIR/dso-server.toml"
}

# dso-server's settings file: the same for every member (each one's address to advertise is on
# its command line). It binds 0.0.0.0: on EC2 the instance's only interface carries its
# private address (a public IP is translated to it by AWS), and the security group decides who
# reaches the port.
write_settings() {
  cat <<EOF
# dso-server settings of the Crucial-rs cluster $CLUSTER, written by deploy/ec2.sh.
bind = "0.0.0.0:$PORT"
discovery = "s3://$BUCKET/$CLUSTER/discovery"
rf = $RF
token-file = "$MEMBER_CONFIG_DIR/token"
tls-cert = "$MEMBER_CONFIG_DIR/tls.crt"
tls-key = "$MEMBER_CONFIG_DIR/tls.key"
tls-ca = "$MEMBER_CONFIG_DIR/ca.crt"
metrics-bind = "$METRICS_BIND"
log-format = "json"
EOF
}

# The instances' user data: the cluster's values, then lib/member-user-data.sh.
write_user_data() {
  local address=local-ipv4
  [ "$BIND" != public ] || address="public-ipv4"
  plan_note "would write $STATE_DIR/user-data.sh (lib/member-user-data.sh for bucket $BUCKET, advertising $address)"
  [ "$PLAN" = false ] || return 0
  {
    printf '#!/bin/bash\n'
    printf '# Crucial-rs DSO member of cluster %s (--bind %s), written by deploy/ec2.sh.\n' "$CLUSTER" "$BIND"
    printf 'CLUSTER=%s\nREGION=%s\nBUCKET=%s\nPORT=%s\nADVERTISED_ADDRESS=%s\n' \
      "$CLUSTER" "$REGION" "$BUCKET" "$PORT" "$address"
    cat "$DEPLOY_DIR/lib/member-user-data.sh"
  } >"$STATE_DIR/user-data.sh"
}

# --- AWS resources ---------------------------------------------------------------------------

# The VPC and the subnets members go to (VPC and SUBNETS).
resolve_network() {
  local vpcs zones subnets
  if [ ${#SUBNETS[@]} -gt 0 ]; then
    vpcs=$(aws_query "<vpc-id>" ec2 describe-subnets --subnet-ids "${SUBNETS[@]}" \
      --query 'Subnets[].VpcId' --output text | tr '\t' '\n' | sort -u)
    [ "$(wc -l <<<"$vpcs")" -eq 1 ] || die "the subnets are in several VPCs (${vpcs//$'\n'/ }): members share one"
    [ -z "$VPC" ] || [ "$VPC" = "$vpcs" ] || die "the subnets are in $vpcs, not in --vpc $VPC"
    VPC=$vpcs
    return 0
  fi
  VPC=$(aws_query "<vpc-id>" ec2 describe-vpcs --filters Name=is-default,Values=true \
    --query 'Vpcs[0].VpcId' --output text)
  [ -n "$VPC" ] || die "$REGION has no default VPC: give --subnet"
  # Not every zone offers every instance type (us-east-1e has no c7g).
  zones=$(aws_query "<zone>" ec2 describe-instance-type-offerings --location-type availability-zone \
    --filters "Name=instance-type,Values=$INSTANCE_TYPE" --query 'InstanceTypeOfferings[].Location' --output text)
  [ -n "$zones" ] || die "$REGION offers no $INSTANCE_TYPE"
  subnets=$(aws_query "<subnet-id>" ec2 describe-subnets --filters "Name=vpc-id,Values=$VPC" \
    Name=default-for-az,Values=true "Name=availability-zone,Values=$(tr '\t' ',' <<<"$zones")" \
    --query 'sort_by(Subnets,&AvailabilityZone)[].SubnetId' --output text)
  read -ra SUBNETS <<<"$subnets"
  [ ${#SUBNETS[@]} -gt 0 ] || die "the default VPC has no default subnet in a zone offering $INSTANCE_TYPE: give --subnet"
}

latest_ami() {
  aws_query "<ami-id>" ssm get-parameter \
    --name "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-$ARCH" \
    --query Parameter.Value --output text
}

# Names of the cluster's SSM parameters that exist.
stored_parameters() {
  aws_query "" ssm describe-parameters \
    --parameter-filters "Key=Name,Option=BeginsWith,Values=/crucial/$CLUSTER/" \
    --query 'Parameters[].Name' --output text
}

ensure_bucket() {
  local found location
  found=$(aws_query "" s3api list-buckets --query "Buckets[?Name=='$BUCKET'].Name" --output text)
  if grep -qxF -- "$BUCKET" <<<"$found"; then
    # The members' S3 client works in the instances' region.
    location=$(aws_query "" s3api get-bucket-location --bucket "$BUCKET" --query LocationConstraint --output text)
    [ "${location:-us-east-1}" = "$REGION" ] || die "bucket $BUCKET is in ${location:-us-east-1}, not $REGION"
    return 0
  fi
  step "creating bucket $BUCKET"
  if [ "$REGION" = us-east-1 ]; then
    aws_do s3api create-bucket --bucket "$BUCKET"
  else
    aws_do s3api create-bucket --bucket "$BUCKET" --create-bucket-configuration "LocationConstraint=$REGION"
  fi
  # The tag also records that this script made the bucket: destroy deletes only such a bucket.
  # (New buckets block public access and encrypt at rest by default.)
  aws_do s3api put-bucket-tagging --bucket "$BUCKET" --tagging "TagSet=[{$(cluster_tag)}]"
}

upload_artifacts() {
  step "uploading dso-server, certificates and settings to s3://$BUCKET/$CLUSTER/"
  aws_do s3 cp "$UPLOAD_DIR/" "s3://$BUCKET/$CLUSTER/" --recursive --only-show-errors
}

# The token and TLS key as SecureString parameters, unless present ($1: the names stored).
ensure_parameters() {
  local stored=$1
  grep -qx -- "$TOKEN_PARAMETER" <<<"${stored//$'\t'/$'\n'}" ||
    put_secret "$TOKEN_PARAMETER" "$STATE_DIR/token" "token every DSO client and member presents"
  grep -qx -- "$KEY_PARAMETER" <<<"${stored//$'\t'/$'\n'}" ||
    put_secret "$KEY_PARAMETER" "$STATE_DIR/tls.key" "TLS private key of the DSO servers"
}

put_secret() {
  step "storing $1 in SSM Parameter Store"
  aws_do ssm put-parameter --name "$1" --type SecureString --value "file://$2" \
    --description "Crucial-rs cluster $CLUSTER: $3" --tags "$(cluster_tag)"
}

# What a member may do: read the cluster's files and secrets, read and write its discovery
# object (conditional PutObject needs nothing more than s3:PutObject).
member_policy() {
  local arn parameters
  arn=arn:$(partition "$REGION")
  parameters="$arn:ssm:$REGION:$ACCOUNT:parameter/crucial/$CLUSTER/*"
  # s3:ListBucket is what makes S3 answer "no such key" (rather than "access denied") to a
  # read of the discovery object before the first member writes it. AWS does not say whether a
  # prefix condition counts there, so it is not limited (it lists names only).
  # kms:Decrypt: the aws/ssm key's own policy already lets SSM decrypt for the account; this
  # statement keeps the members working under a customer managed key, and only through SSM,
  # only for this cluster's parameters.
  tr -d ' \n' <<EOF
{
  "Version": "2012-10-17",
  "Statement": [
    {"Sid": "ReadClusterFiles", "Effect": "Allow", "Action": "s3:GetObject",
     "Resource": "$arn:s3:::$BUCKET/$CLUSTER/*"},
    {"Sid": "WriteDiscovery", "Effect": "Allow", "Action": "s3:PutObject",
     "Resource": "$arn:s3:::$BUCKET/$CLUSTER/discovery/*"},
    {"Sid": "MissingKeysAreNotFound", "Effect": "Allow", "Action": "s3:ListBucket",
     "Resource": "$arn:s3:::$BUCKET"},
    {"Sid": "ReadSecrets", "Effect": "Allow", "Action": ["ssm:GetParameter", "ssm:GetParameters"],
     "Resource": "$parameters"},
    {"Sid": "DecryptSecretsThroughSsm", "Effect": "Allow", "Action": "kms:Decrypt",
     "Resource": "$arn:kms:$REGION:$ACCOUNT:key/*",
     "Condition": {"StringEquals": {"kms:ViaService": "ssm.$REGION.amazonaws.com"},
                   "StringLike": {"kms:EncryptionContext:PARAMETER_ARN": "$parameters"}}}
  ]
}
EOF
}

# The members' role and instance profile (both named ROLE_NAME).
ensure_instance_profile() {
  local arn owner profile path role
  arn=$(role_arn "$ROLE_NAME")
  if [ -z "$arn" ]; then
    step "creating IAM role and instance profile $ROLE_NAME"
    create_role "$ROLE_NAME" ec2.amazonaws.com >/dev/null
  else
    owner=$(role_owner "$ROLE_NAME")
    [ "$owner" = "$CLUSTER" ] || die "IAM role $ROLE_NAME exists but is not tagged $CLUSTER_TAG=$CLUSTER"
  fi
  # Written on every run: the policy follows this run's bucket.
  aws_do iam put-role-policy --role-name "$ROLE_NAME" --policy-name dso-member --policy-document "$(member_policy)"
  # Not `read <<<"$(...)"`: a failed lookup there would not stop the script.
  profile=$(find_instance_profile)
  read -r profile path role <<<"$profile"
  [ -z "$profile" ] || [ "$path" = "$IAM_PATH" ] ||
    die "instance profile $ROLE_NAME exists outside $IAM_PATH: it is not this script's"
  [ -n "$profile" ] || aws_do iam create-instance-profile --instance-profile-name "$ROLE_NAME" \
    --path "$IAM_PATH" --tags "$(cluster_tag)"
  [ "${role:-}" = "$ROLE_NAME" ] ||
    aws_do iam add-role-to-instance-profile --instance-profile-name "$ROLE_NAME" --role-name "$ROLE_NAME"
}

# Prints the id of the cluster's security group, made if missing ($1: find_group's answer).
ensure_group() {
  local group vpc
  read -r group vpc _ <<<"$1"
  if [ -n "$group" ]; then
    [ "$vpc" = "$VPC" ] || die "cluster $CLUSTER's security group $group is in $vpc, not $VPC"
    printf '%s' "$group"
    return 0
  fi
  step "creating security group $NAME in $VPC"
  aws_query "<sg-id>" ec2 create-security-group --group-name "$NAME" --vpc-id "$VPC" \
    --description "Crucial-rs DSO cluster $CLUSTER: the DSO port only" \
    --tag-specifications "ResourceType=security-group,Tags=[{$(cluster_tag)},{Key=Name,Value=$NAME},{Key=crucial:bucket,Value=$BUCKET}]" \
    --query GroupId --output text
}

# The running members' public IPs as /32 ranges, one per line ($1: find_members' answer).
member_public_ranges() {
  local id state private public bind port
  while read -r id state private public bind port; do
    [ "$state" = running ] && [ -n "$public" ] && [ "$public" != None ] || continue
    printf '%s/32\n' "$public"
  done <<<"$1"
}

# Makes group $1's ingress rules exactly: the DSO port from each --allow-cidr, each --allow-sg
# and the group itself (the members). With --bind public, members reach each other at their
# public IPs, and traffic to a public IP does not count as coming from the group, so each
# running member's public IP ($2: find_members' answer) is allowed too. Any other rule is
# revoked.
allow_sources() {
  local group=$1 rules id protocol from to cidr source stale=() permissions=() key ranges=()
  local -A wanted=() members=()
  [ "$BIND" != public ] || mapfile -t ranges < <(member_public_ranges "$2")
  local sources=("${ALLOW_CIDRS[@]/#/cidr:}" "${ALLOW_GROUPS[@]/#/sg:}" "sg:$group" "${ranges[@]/#/cidr:}")
  for key in "sg:$group" "${ranges[@]/#/cidr:}"; do members[$key]=1; done
  for key in "${sources[@]}"; do wanted[$key]=1; done
  rules=$(ingress_rules "$group")
  while read -r id protocol from to cidr source; do
    [ -n "$id" ] || continue
    key=cidr:$cidr
    [ "$cidr" != None ] || key=sg:$source
    if [ "$protocol:$from:$to" = "tcp:$PORT:$PORT" ] && [ -n "${wanted[$key]:-}" ]; then
      unset "wanted[$key]"
    else
      stale+=("$id")
    fi
  done <<<"$rules"
  if [ ${#stale[@]} -gt 0 ]; then
    step "revoking ${#stale[@]} rule(s) of $group that were not asked for"
    aws_do ec2 revoke-security-group-ingress --group-id "$group" --security-group-rule-ids "${stale[@]}"
  fi
  for key in "${sources[@]}"; do
    [ -n "${wanted[$key]:-}" ] || continue
    unset "wanted[$key]"
    permissions+=("$(permission "$key" "${members[$key]:+DSO members}")")
  done
  [ ${#permissions[@]} -eq 0 ] ||
    aws_do ec2 authorize-security-group-ingress --group-id "$group" \
      --ip-permissions "[$(IFS=, && echo "${permissions[*]}")]"
}

# The ingress permission (JSON) for the DSO port from source $1 (cidr:RANGE or sg:GROUP),
# described as $2 (default: DSO clients).
permission() {
  local from who=${2:-DSO clients}
  if [[ $1 == cidr:* ]]; then
    from=$(printf '"IpRanges":[{"CidrIp":"%s","Description":"%s"}]' "${1#cidr:}" "$who")
  else
    from=$(printf '"UserIdGroupPairs":[{"GroupId":"%s","Description":"%s"}]' "${1#sg:}" "$who")
  fi
  printf '{"IpProtocol":"tcp","FromPort":%s,"ToPort":%s,%s}' "$PORT" "$PORT" "$from"
}

# Existing members must have been made with this --bind and --port: a cluster mixing them
# would advertise addresses some clients cannot reach.
check_members_match() {
  local id state private public bind port
  while read -r id state private public bind port; do
    [ -n "$id" ] || continue
    [ "$bind:$port" = "$BIND:$PORT" ] ||
      die "cluster $CLUSTER's member $id runs with --bind $bind --port $port: use those, or destroy the cluster first"
  done <<<"$1"
}

# Launches members until there are MEMBERS ($1: find_members' answer; $2: the group), one call
# per member, spread over SUBNETS in turn; waits until they run. Sets LAUNCHED to their number.
launch_members() {
  local have group=$2 index subnet public_ip launched=()
  have=$(grep -c . <<<"$1" || true)
  LAUNCHED=0
  if [ "$have" -ge "$MEMBERS" ]; then
    [ "$have" -eq "$MEMBERS" ] || log "cluster $CLUSTER has $have members, more than $MEMBERS: up removes none"
    return 0
  fi
  step "launching $((MEMBERS - have)) member(s) ($INSTANCE_TYPE, $AMI)"
  public_ip=--associate-public-ip-address
  [ "$BIND" != vpc ] || public_ip=--no-associate-public-ip-address
  for ((index = have; index < MEMBERS; index++)); do
    subnet=${SUBNETS[index % ${#SUBNETS[@]}]}
    launched+=("$(aws_retry "$PROFILE_NOT_READY" "<instance-id-$((index + 1))>" ec2 run-instances \
      --image-id "$AMI" --instance-type "$INSTANCE_TYPE" --count 1 \
      --subnet-id "$subnet" --security-group-ids "$group" "$public_ip" \
      --iam-instance-profile "Name=$ROLE_NAME" \
      --metadata-options HttpTokens=required,HttpEndpoint=enabled \
      --user-data "file://$STATE_DIR/user-data.sh" \
      --tag-specifications "ResourceType=instance,Tags=[{$(cluster_tag)},{Key=Name,Value=$NAME},{Key=crucial:bind,Value=$BIND},{Key=crucial:port,Value=$PORT}]" \
      "ResourceType=volume,Tags=[{$(cluster_tag)},{Key=Name,Value=$NAME}]" \
      --query 'Instances[0].InstanceId' --output text)")
  done
  aws_do ec2 wait instance-running --instance-ids "${launched[@]}"
  LAUNCHED=${#launched[@]}
}

# --- commands --------------------------------------------------------------------------------

cmd_up() {
  local group_info group_bucket members stored group
  [ "$PLAN" = true ] || check_binary
  ACCOUNT=$(account_id)
  group_info=$(find_group)
  read -r _ _ group_bucket <<<"$group_info"
  if [ -n "$BUCKET" ] && [ -n "$group_bucket" ] && [ "$BUCKET" != "$group_bucket" ]; then
    die "cluster $CLUSTER uses bucket $group_bucket: give that --bucket, or destroy the cluster first"
  fi
  BUCKET=${BUCKET:-${group_bucket:-crucial-$CLUSTER-$ACCOUNT-$REGION}}
  members=$(find_members)
  check_members_match "$members"
  resolve_network
  AMI=${AMI:-$(latest_ami)}
  stored=$(stored_parameters)
  make_secrets "$stored"
  write_upload_dir
  write_user_data
  ensure_bucket
  upload_artifacts
  ensure_parameters "$stored"
  ensure_instance_profile
  group=$(ensure_group "$group_info")
  launch_members "$members" "$group"
  if [ "$LAUNCHED" -gt 0 ]; then
    # The new members' addresses.
    PLAN_EXISTING=true
    members=$(find_members)
  fi
  # After the launch: with --bind public the rules name the members' public IPs, new ones too
  # (a member that cannot reach the others yet keeps trying).
  allow_sources "$group" "$members"
  [ "$PLAN" = true ] || print_client_settings "$members"
}

# What clients need: the members' addresses, the CA, the token's whereabouts.
print_client_settings() {
  printf 'CRUCIAL_DSO=%s\n' "$(crucial_dso "$1")"
  printf 'CA certificate: %s (clients check the server name %s)\n' "$STATE_DIR/ca.crt" "$CERT_NAME"
  printf 'token: SSM SecureString %s (also %s):\n' "$TOKEN_PARAMETER" "$STATE_DIR/token"
  printf '  aws ssm get-parameter --name %s --with-decryption --query Parameter.Value --output text\n' \
    "$TOKEN_PARAMETER"
}

cmd_status() {
  local group_info group vpc group_bucket members rules listing config
  PLAN_EXISTING=true
  group_info=$(find_group)
  read -r group vpc group_bucket <<<"$group_info"
  members=$(find_members)
  [ -z "$group" ] || rules=$(ingress_rules "$group")
  BUCKET=${BUCKET:-$group_bucket}
  if [ -n "$BUCKET" ]; then
    listing=$(aws_query "$(assumed "$CLUSTER/discovery/config.json <time> <bytes>")" s3api list-objects-v2 \
      --bucket "$BUCKET" --prefix "$CLUSTER/discovery/" --query 'Contents[].[Key,LastModified,Size]' --output text)
  fi
  if grep -q "^$CLUSTER/discovery/config.json" <<<"${listing:-}"; then
    config=$(aws_query "<config>" s3 cp "s3://$BUCKET/$CLUSTER/discovery/config.json" -)
  fi
  [ "$PLAN" = false ] || return 0
  printf 'cluster %s in %s\n' "$CLUSTER" "$REGION"
  print_members "$members"
  if [ -z "$group" ]; then
    printf 'no security group tagged %s=%s: the cluster is not up\n' "$CLUSTER_TAG" "$CLUSTER"
  else
    printf 'security group %s (%s) in %s, inbound:\n' "$group" "$NAME" "$vpc"
    print_rules "$rules"
  fi
  [ -z "$BUCKET" ] || print_discovery "${listing:-}" "${config:-}"
  printf 'CRUCIAL_DSO=%s\n' "$(crucial_dso "$members")"
}

print_members() {
  local id state private public bind port
  printf 'members:\n'
  while read -r id state private public bind port; do
    [ -n "$id" ] || continue
    printf '  %-20s %-9s private %-15s public %-15s advertises %s:%s\n' "$id" "$state" "$private" \
      "${public/#None/-}" "$([ "$bind" = public ] && echo "$public" || echo "$private")" "$port"
  done <<<"$1"
}

print_rules() {
  local id protocol from to cidr source
  while read -r id protocol from to cidr source; do
    [ -n "$id" ] || continue
    printf '  %s %s-%s from %s\n' "$protocol" "$from" "$to" "$([ "$cidr" = None ] && echo "$source" || echo "$cidr")"
  done <<<"$1"
}

print_discovery() {
  printf 'discovery s3://%s/%s/discovery/:\n' "$BUCKET" "$CLUSTER"
  [ -n "$1" ] || printf '  (empty: no member has started yet)\n'
  [ -z "$1" ] || printf '  %s\n' "${1//$'\n'/$'\n'  }"
  [ -z "$2" ] || printf '    %s\n' "${2//$'\n'/$'\n'    }"
}

cmd_destroy() {
  local group_info group group_bucket members
  PLAN_EXISTING=true
  group_info=$(find_group)
  read -r group _ group_bucket <<<"$group_info"
  BUCKET=${BUCKET:-$group_bucket}
  [ -n "$BUCKET" ] || BUCKET=$(find_tagged_bucket)
  members=$(find_members)
  terminate_members "$members"
  [ -z "$BUCKET" ] || delete_bucket_contents
  if [ -n "$group" ]; then
    FOUND=true
    step "deleting security group $group"
    # A terminated instance's network interface can hold the group for a little while.
    aws_retry DependencyViolation "" ec2 delete-security-group --group-id "$group" >/dev/null
  fi
  delete_instance_profile
  delete_parameters
  remove_state_dir
  step "cluster $CLUSTER destroyed"
}

delete_parameters() {
  local stored
  stored=$(stored_parameters)
  [ -n "$stored" ] || [ "$PLAN" = true ] || return 0
  FOUND=true
  step "deleting SSM parameters $TOKEN_PARAMETER, $KEY_PARAMETER"
  aws_do ssm delete-parameters --names "$TOKEN_PARAMETER" "$KEY_PARAMETER"
}

# The state dir holds the only copy of the CA's key: it goes only when this destroy found the
# cluster in AWS (or with --forget-state), so that a destroy with a wrong --region or --cluster
# leaves it.
remove_state_dir() {
  if [ "$FOUND" = false ] && [ "$FORGET_STATE" = false ] && [ "$PLAN" = false ]; then
    [ ! -e "$STATE_DIR" ] ||
      log "found nothing tagged $CLUSTER_TAG=$CLUSTER in $REGION: keeping $STATE_DIR (--forget-state removes it)"
    return 0
  fi
  plan_note "would remove $STATE_DIR"
  [ "$PLAN" = true ] || rm -rf "$STATE_DIR"
}

terminate_members() {
  local ids
  ids=$(cut -f1 <<<"$1" | tr '\n' ' ')
  read -ra ids <<<"$ids"
  [ ${#ids[@]} -gt 0 ] || return 0
  FOUND=true
  step "terminating ${#ids[@]} member(s): ${ids[*]}"
  aws_do ec2 terminate-instances --instance-ids "${ids[@]}"
  aws_do ec2 wait instance-terminated --instance-ids "${ids[@]}"
}

# Deletes the cluster's objects, and the bucket if this script made it for the cluster and
# nothing else is in it.
delete_bucket_contents() {
  local found owner left
  found=$(aws_query "$(assumed "$BUCKET")" s3api list-buckets --query "Buckets[?Name=='$BUCKET'].Name" --output text)
  grep -qxF -- "$BUCKET" <<<"$found" || return 0
  step "deleting s3://$BUCKET/$CLUSTER/"
  aws_do s3 rm "s3://$BUCKET/$CLUSTER/" --recursive --only-show-errors
  owner=$(bucket_owner "$BUCKET")
  if [ "$owner" != "$CLUSTER" ]; then
    step "keeping bucket $BUCKET: it existed before the cluster"
    return 0
  fi
  FOUND=true
  left=$(aws_query "" s3api list-objects-v2 --bucket "$BUCKET" --max-items 1 --query 'Contents[0].Key' --output text)
  if [ -n "$left" ]; then
    step "keeping bucket $BUCKET: it holds objects outside $CLUSTER/"
    return 0
  fi
  step "deleting bucket $BUCKET"
  aws_do s3api delete-bucket --bucket "$BUCKET"
}

delete_instance_profile() {
  local profile path role arn owner
  # Not `read <<<"$(...)"`: a failed lookup there would not stop the script.
  profile=$(find_instance_profile)
  read -r profile path role <<<"$profile"
  [ -z "$profile" ] || [ "$path" = "$IAM_PATH" ] ||
    die "instance profile $ROLE_NAME exists outside $IAM_PATH: left alone"
  if [ -n "$profile" ]; then
    FOUND=true
    step "deleting instance profile $ROLE_NAME"
    [ -z "$role" ] || [ "$role" = None ] ||
      aws_do iam remove-role-from-instance-profile --instance-profile-name "$ROLE_NAME" --role-name "$role"
    aws_do iam delete-instance-profile --instance-profile-name "$ROLE_NAME"
  fi
  arn=$(role_arn "$ROLE_NAME")
  [ -n "$arn" ] || return 0
  owner=$(role_owner "$ROLE_NAME")
  [ "$owner" = "$CLUSTER" ] || die "IAM role $ROLE_NAME is not tagged $CLUSTER_TAG=$CLUSTER: left alone"
  FOUND=true
  step "deleting IAM role $ROLE_NAME"
  delete_role "$ROLE_NAME"
}

main() {
  require_bash
  parse_args "$@"
  validate_args
  REGION=$(resolve_region "$REGION")
  use_region "$REGION"
  set_names
  plan_note "deploy/ec2.sh $COMMAND --plan: cluster $CLUSTER in $REGION; no call is made"
  case $COMMAND in
    up) cmd_up ;;
    status) cmd_status ;;
    destroy) cmd_destroy ;;
  esac
}

main "$@"
