#!/usr/bin/env bash
# The Lambda function that runs Crucial-rs cloud threads: `deploy` creates or updates it,
# `destroy` deletes it. Run `deploy/lambda.sh --help` for the options.
set -euo pipefail

SCRIPT_NAME=deploy/lambda.sh
DEPLOY_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$DEPLOY_DIR")
# shellcheck source=deploy/lib/aws.sh
source "$DEPLOY_DIR/lib/aws.sh"

readonly HANDLER_BIN=crucial-lambda-handler
readonly BUILT_ZIP=$REPO_DIR/target/lambda/$HANDLER_BIN/bootstrap.zip
# Lambda refuses a role made a few seconds earlier (or one whose VPC permissions have not
# reached it yet) with these words.
readonly ROLE_NOT_READY='cannot be assumed by Lambda|does not have permissions to call CreateNetworkInterface'

usage() {
  cat <<'EOF'
Usage: deploy/lambda.sh deploy|destroy [options]

The Lambda function that runs Crucial-rs cloud threads (the crucial-lambda-handler binary,
runtime provided.al2023), its execution role, and its VPC settings. Everything made is tagged
crucial:cluster=CLUSTER.

  deploy    build the handler with cargo-lambda (unless --zip), then create the function, or
            update its code and configuration in place; prints what the Lambda executor needs
  destroy   delete the function, its log group and its execution role
Both refuse a function of that name that is not tagged crucial:cluster=CLUSTER.

Options:
  --function-name NAME    default crucial-threads (its role: NAME-REGION)
  --cluster NAME          the DSO cluster (default crucial): the tag, and, without --dso, where
                          CRUCIAL_DSO comes from (deploy/ec2.sh status --cluster NAME)
  --dso HOST:PORT,...     the DSO members as the functions reach them (environment CRUCIAL_DSO)
  --ca FILE               the cluster's CA certificate, for TLS (environment CRUCIAL_DSO_TLS_CA;
                          default deploy/.state/CLUSTER-REGION/ca.crt when it exists; not a
                          secret)
  --region REGION         default: AWS_REGION, AWS_DEFAULT_REGION or the CLI profile's region
  --arch arm64|x86_64     default arm64
  --memory MB             default 1769 (one full vCPU)
  --timeout SECONDS       default 900 (Lambda's maximum)
  --event-max-age SECONDS how long Lambda keeps an Event invocation it could not run yet
                          (default 3600; 60 to 21600)
  --event-retries N       how often Lambda reruns an Event invocation that failed (default 0,
                          0 to 2: the executor retries threads itself, Builder::retries)
  --subnets ID,...        run the functions in these VPC subnets (with --security-groups)
  --security-groups ID,...
                          the functions' security groups (the one deploy/ec2.sh --allow-sg names)
  --zip FILE              a built bootstrap.zip instead of building one with
                            cargo lambda build --release -p crucial-threads --features lambda \
                              --bin crucial-lambda-handler --arm64|--x86-64 --output-format zip
  --plan                  print every AWS call, one per line, instead of making it (and the
                          build instead of running it); <...> stands for what a call would answer
  -h, --help              this text

The DSO token is not put in the function's environment, where anyone allowed
lambda:GetFunctionConfiguration could read it: the program that starts the threads reads it
from SSM (aws ssm get-parameter --name /crucial/CLUSTER/token --with-decryption) and gives it to
the executor (LambdaBuilder::dso_token), which sends it in each invocation.

Event invocations (the executor's Event mode) can run late or twice: Lambda may deliver one up
to --event-max-age seconds after it was sent, and reruns it --event-retries times. Whichever
run comes last finds the thread's outcome stored in the DSO and returns it without running
again, so a thread's stored outcome must be kept at least --event-max-age plus --timeout
seconds after the thread was started.
EOF
}

# Settings, from the command line.
COMMAND=""
FUNCTION=crucial-threads
CLUSTER=crucial
DSO=""
REGION=""
ARCH=arm64
MEMORY_MB=1769
TIMEOUT_SECONDS=900
EVENT_MAX_AGE_SECONDS=3600
EVENT_RETRIES=0
SUBNETS=""
SECURITY_GROUPS=""
ZIP=""
CA=""

parse_args() {
  case ${1:-} in
    deploy | destroy) COMMAND=$1 ;;
    -h | --help) usage && exit 0 ;;
    "") usage_error "a command is needed: deploy or destroy" ;;
    *) usage_error "unknown command '$1': deploy or destroy" ;;
  esac
  shift
  while [ $# -gt 0 ]; do
    case $1 in
      --function-name) FUNCTION=$(option_value "$@") ;;
      --cluster) CLUSTER=$(option_value "$@") ;;
      --dso) DSO=$(option_value "$@") ;;
      --region) REGION=$(option_value "$@") ;;
      --arch) ARCH=$(option_value "$@") ;;
      --memory) MEMORY_MB=$(option_value "$@") ;;
      --timeout) TIMEOUT_SECONDS=$(option_value "$@") ;;
      --event-max-age) EVENT_MAX_AGE_SECONDS=$(option_value "$@") ;;
      --event-retries) EVENT_RETRIES=$(option_value "$@") ;;
      --subnets) SUBNETS=$(option_value "$@") ;;
      --security-groups) SECURITY_GROUPS=$(option_value "$@") ;;
      --zip) ZIP=$(option_value "$@") ;;
      --ca) CA=$(option_value "$@") ;;
      --plan) PLAN=true && shift && continue ;;
      -h | --help) usage && exit 0 ;;
      *) usage_error "unknown option '$1'" ;;
    esac
    shift 2
  done
}

validate_args() {
  check_cluster_name "$CLUSTER"
  # The role's name adds the region, and IAM takes 64 characters.
  check_format --function-name "$FUNCTION" '^[A-Za-z0-9_-]{1,48}$' "1 to 48 letters, digits, '-' or '_'"
  check_format --arch "$ARCH" '^(arm64|x86_64)$' "arm64 or x86_64"
  check_number --memory "$MEMORY_MB" 128 10240
  check_number --timeout "$TIMEOUT_SECONDS" 1 900
  check_number --event-max-age "$EVENT_MAX_AGE_SECONDS" 60 21600
  check_number --event-retries "$EVENT_RETRIES" 0 2
  [ -z "$DSO" ] || check_format --dso "$DSO" '^[^,:]+:[0-9]+(,[^,:]+:[0-9]+)*$' "HOST:PORT,..."
  [ -z "$SUBNETS" ] || check_format --subnets "$SUBNETS" '^subnet-[0-9a-f]+(,subnet-[0-9a-f]+)*$' \
    "subnet ids separated by commas"
  [ -z "$SECURITY_GROUPS" ] || check_format --security-groups "$SECURITY_GROUPS" '^sg-[0-9a-f]+(,sg-[0-9a-f]+)*$' \
    "security group ids separated by commas"
  # Lambda takes a VPC configuration whole: subnets and security groups together.
  if [[ -n $SUBNETS && -z $SECURITY_GROUPS || -z $SUBNETS && -n $SECURITY_GROUPS ]]; then
    usage_error "--subnets and --security-groups go together"
  fi
  [ -z "$ZIP" ] || [ "$PLAN" = true ] || [ -f "$ZIP" ] || usage_error "--zip $ZIP: no such file"
  [ -z "$CA" ] || [ "$PLAN" = true ] || [ -f "$CA" ] || usage_error "--ca $CA: no such file"
}

# The CA certificate that deploy/ec2.sh made for the cluster in this region, unless --ca.
default_ca() {
  local made=$DEPLOY_DIR/.state/$CLUSTER-$REGION/ca.crt
  [ -n "$CA" ] || [ ! -f "$made" ] || CA=$made
}

# --- the function's pieces -------------------------------------------------------------------

# The deployment package: --zip, or the handler built now with cargo-lambda.
function_zip() {
  local target=--arm64
  if [ -n "$ZIP" ]; then
    printf '%s' "$ZIP"
    return 0
  fi
  [ "$ARCH" = arm64 ] || target=--x86-64
  local build=(cargo lambda build --release -p crucial-threads --features lambda --bin "$HANDLER_BIN"
    "$target" --output-format zip)
  plan_note "would run: ${build[*]}"
  if [ "$PLAN" = false ]; then
    command -v cargo-lambda >/dev/null || die "cargo-lambda is needed to build the handler (pip install cargo-lambda), or give --zip"
    step "building $HANDLER_BIN for $ARCH"
    (cd "$REPO_DIR" && "${build[@]}" >&2) || die "the build failed"
  fi
  printf '%s' "$BUILT_ZIP"
}

# The DSO members for CRUCIAL_DSO: --dso, or the running members of --cluster.
dso_members() {
  local status members
  if [ -n "$DSO" ]; then
    printf '%s' "$DSO"
    return 0
  fi
  if [ "$PLAN" = true ]; then
    "$DEPLOY_DIR/ec2.sh" status --cluster "$CLUSTER" --region "$REGION" --plan >&3
    printf '<crucial-dso>'
    return 0
  fi
  status=$("$DEPLOY_DIR/ec2.sh" status --cluster "$CLUSTER" --region "$REGION") ||
    die "deploy/ec2.sh status --cluster $CLUSTER failed"
  members=$(sed -n 's/^CRUCIAL_DSO=//p' <<<"$status")
  [ -n "$members" ] ||
    die "cluster $CLUSTER has no running member in $REGION: run deploy/ec2.sh up first, or give --dso"
  printf '%s' "$members"
}

# Prints the execution role's ARN, making the role if missing, with the managed policies the
# function needs: logs, and network interfaces when it runs in a VPC.
ensure_execution_role() {
  local arn owner attached policies
  policies=arn:$(partition "$REGION"):iam::aws:policy/service-role
  arn=$(role_arn "$ROLE")
  if [ -z "$arn" ]; then
    step "creating execution role $ROLE"
    arn=$(create_role "$ROLE" lambda.amazonaws.com)
  else
    owner=$(role_owner "$ROLE")
    [ "$owner" = "$CLUSTER" ] || die "IAM role $ROLE exists but is not tagged $CLUSTER_TAG=$CLUSTER"
  fi
  attached=$(aws_query "" iam list-attached-role-policies --role-name "$ROLE" \
    --query 'AttachedPolicies[].PolicyArn' --output text)
  [[ $attached == *AWSLambdaBasicExecutionRole* ]] ||
    aws_do iam attach-role-policy --role-name "$ROLE" --policy-arn "$policies/AWSLambdaBasicExecutionRole"
  if [ -n "$SUBNETS" ] && [[ $attached != *AWSLambdaVPCAccessExecutionRole* ]]; then
    aws_do iam attach-role-policy --role-name "$ROLE" --policy-arn "$policies/AWSLambdaVPCAccessExecutionRole"
  elif [ -z "$SUBNETS" ] && [[ $attached == *AWSLambdaVPCAccessExecutionRole* ]]; then
    aws_do iam detach-role-policy --role-name "$ROLE" --policy-arn "$policies/AWSLambdaVPCAccessExecutionRole"
  fi
  printf '%s' "$arn"
}

# The function's ARN, or nothing.
find_function() {
  aws_find '\(ResourceNotFoundException\)' "$(assumed "<function-arn>")" lambda get-function \
    --function-name "$FUNCTION" --query Configuration.FunctionArn --output text
}

# Stops unless function $1 (an ARN) carries the cluster tag: a function of that name made by
# someone else, or for another cluster, is neither updated nor deleted.
check_function_owner() {
  local owner
  owner=$(aws_query "$(assumed "$CLUSTER")" lambda list-tags --resource "$1" \
    --query "Tags.\"$CLUSTER_TAG\"" --output text)
  [ "$owner" = "$CLUSTER" ] ||
    die "function $FUNCTION exists but is not tagged $CLUSTER_TAG=$CLUSTER (${owner:-no such tag}): left alone; give another --function-name or --cluster"
}

# The CA certificate's PEM text for CRUCIAL_DSO_TLS_CA, or nothing without --ca.
ca_pem() {
  [ -n "$CA" ] || return 0
  if [ "$PLAN" = true ]; then
    printf '<PEM of %s>' "$CA"
    return 0
  fi
  grep -q -- '-----BEGIN CERTIFICATE-----' "$CA" || die "--ca $CA holds no PEM certificate"
  cat "$CA"
}

# The function's environment (JSON) for members $1 and CA PEM text $2. No token: see --help.
environment() {
  local variables="\"CRUCIAL_DSO\":\"$1\""
  [ -z "$2" ] || variables+=",\"CRUCIAL_DSO_TLS_CA\":\"${2//$'\n'/\\n}\""
  printf '{"Variables":{%s}}' "$variables"
}

# The settings shared by create-function and update-function-configuration ($1: role ARN,
# $2: the environment). An update without --subnets takes the function out of its VPC.
function_settings() {
  local subnets=${SUBNETS:+\"${SUBNETS//,/\",\"}\"} groups=${SECURITY_GROUPS:+\"${SECURITY_GROUPS//,/\",\"}\"}
  printf '%s\0' --runtime provided.al2023 --handler bootstrap \
    --memory-size "$MEMORY_MB" --timeout "$TIMEOUT_SECONDS" --role "$1" \
    --description "Crucial-rs cloud threads (cluster $CLUSTER)" --environment "$2" \
    --vpc-config "{\"SubnetIds\":[$subnets],\"SecurityGroupIds\":[$groups]}"
}

create_function() {
  local zip=$1 settings=()
  mapfile -d '' -t settings < <(function_settings "$2" "$3")
  step "creating function $FUNCTION"
  aws_retry "$ROLE_NOT_READY" "<function-arn>" lambda create-function --function-name "$FUNCTION" \
    --architectures "$ARCH" --zip-file "fileb://$zip" "${settings[@]}" \
    --tags "{\"$CLUSTER_TAG\":\"$CLUSTER\"}" --query FunctionArn --output text
  aws_do lambda wait function-active-v2 --function-name "$FUNCTION"
}

# Updates function $4 in place: code, then configuration (Lambda refuses a second change while
# the first is in progress, hence the waits), then its tag.
update_function() {
  local zip=$1 settings=()
  mapfile -d '' -t settings < <(function_settings "$2" "$3")
  step "updating function $FUNCTION"
  aws_do lambda update-function-code --function-name "$FUNCTION" --zip-file "fileb://$zip" \
    --architectures "$ARCH"
  aws_do lambda wait function-updated-v2 --function-name "$FUNCTION"
  aws_retry "$ROLE_NOT_READY" "" lambda update-function-configuration --function-name "$FUNCTION" \
    "${settings[@]}" >/dev/null
  aws_do lambda wait function-updated-v2 --function-name "$FUNCTION"
  aws_do lambda tag-resource --resource "$4" --tags "{\"$CLUSTER_TAG\":\"$CLUSTER\"}"
}

# How Lambda treats Event invocations of the function: how long one may wait to run, and how
# often a failed one runs again (the window in which a late duplicate of a thread can arrive).
set_event_invoke_config() {
  aws_do lambda put-function-event-invoke-config --function-name "$FUNCTION" \
    --maximum-event-age-in-seconds "$EVENT_MAX_AGE_SECONDS" --maximum-retry-attempts "$EVENT_RETRIES"
}

# --- commands --------------------------------------------------------------------------------

cmd_deploy() {
  local zip members pem environment role arn
  # Before anything is built or made: the function must be absent or this cluster's.
  arn=$(find_function)
  [ -z "$arn" ] || check_function_owner "$arn"
  zip=$(function_zip)
  members=$(dso_members)
  pem=$(ca_pem)
  environment=$(environment "$members" "$pem")
  role=$(ensure_execution_role)
  if [ -z "$arn" ]; then
    arn=$(create_function "$zip" "$role" "$environment")
  else
    update_function "$zip" "$role" "$environment" "$arn"
  fi
  set_event_invoke_config
  [ "$PLAN" = true ] || print_executor_settings "$arn" "$members"
}

# What the program that starts the threads needs.
print_executor_settings() {
  printf 'function: %s\n' "$1"
  printf 'region: %s\n' "$REGION"
  printf 'CRUCIAL_DSO (the function'"'"'s environment): %s\n' "$2"
  if [ -n "$CA" ]; then
    printf 'TLS: CRUCIAL_DSO_TLS_CA holds %s (server name crucial-dso)\n' "$CA"
  else
    printf 'TLS: no --ca, so the function has no CRUCIAL_DSO_TLS_CA: the executor must send the trust (LambdaBuilder::dso_tls)\n'
  fi
  printf 'token: not in the function; the program reads it and passes it in each invocation:\n'
  printf '  aws ssm get-parameter --name /crucial/%s/token --with-decryption --query Parameter.Value --output text\n' \
    "$CLUSTER"
}

cmd_destroy() {
  local arn role owner
  PLAN_EXISTING=true
  arn=$(find_function)
  if [ -n "$arn" ]; then
    # Checked before anything is deleted: the log group and role go with the function.
    check_function_owner "$arn"
    step "deleting function $FUNCTION"
    aws_do lambda delete-function --function-name "$FUNCTION"
  fi
  # Lambda makes the log group on the first invocation; it goes with the function (a log group
  # that is not there is no error: one call, no paged listing).
  aws_find '\(ResourceNotFoundException\)' "" logs delete-log-group \
    --log-group-name "/aws/lambda/$FUNCTION" >/dev/null
  role=$(role_arn "$ROLE")
  [ -n "$role" ] || return 0
  owner=$(role_owner "$ROLE")
  [ "$owner" = "$CLUSTER" ] || die "IAM role $ROLE is not tagged $CLUSTER_TAG=$CLUSTER: left alone"
  step "deleting execution role $ROLE"
  delete_role "$ROLE"
}

main() {
  require_bash
  parse_args "$@"
  validate_args
  REGION=$(resolve_region "$REGION")
  use_region "$REGION"
  # IAM is global, functions regional: a function of the same name in another region has a
  # role of its own.
  ROLE=$FUNCTION-$REGION
  default_ca
  plan_note "deploy/lambda.sh $COMMAND --plan: function $FUNCTION in $REGION; no call is made"
  case $COMMAND in
    deploy) cmd_deploy ;;
    destroy) cmd_destroy ;;
  esac
}

main "$@"
