# shellcheck shell=bash
# Shared by deploy/ec2.sh and deploy/lambda.sh (sourced, not run): messages, option checks,
# the wrapper that either makes an AWS CLI call or, under --plan, prints it, the region, the
# cluster tag, and the IAM roles both scripts make.
#
# Only AWS CLI commands and options that versions 1 and 2 both have are used. The endpoint comes
# from the standard AWS_ENDPOINT_URL variable (CLI v1 >= 1.29, v2 >= 2.13), credentials from the
# standard chain; nothing here writes credentials anywhere.

# The tag on everything the scripts create; they find their resources again by it.
readonly CLUSTER_TAG=crucial:cluster
# Roles and instance profiles live under this IAM path.
readonly IAM_PATH=/crucial/
# IAM is eventually consistent: EC2 and Lambda refuse a role or instance profile made a few
# seconds earlier. Calls that name one are retried this often, this far apart.
readonly RETRY_ATTEMPTS=20
readonly RETRY_DELAY_SECONDS=3

# The CLI v2 pages long answers through `less`; a script wants them on its output.
export AWS_PAGER=""

# A lookup that fails inside $(...) must stop the script, not answer "absent": without this,
# bash runs command substitutions without -e, and a function there goes on past a failed call.
# (Bash before 4.4 lacks the option; require_bash then refuses it with a message.)
shopt -s inherit_errexit 2>/dev/null || true

# true under --plan: AWS calls are printed, not made.
PLAN=false
# What the plan assumes of lookups: false while creating (nothing exists yet: lookups answer
# "absent"), true while reading or deleting (they answer placeholders such as <sg-id>).
PLAN_EXISTING=false
# The plan goes to the script's standard output even from inside $(...): descriptor 3 is it.
exec 3>&1

# Associative arrays, `read -a` and empty arrays under `set -u` need bash 4.4 (macOS ships 3.2:
# `brew install bash`).
require_bash() {
  ((BASH_VERSINFO[0] > 4 || (BASH_VERSINFO[0] == 4 && BASH_VERSINFO[1] >= 4))) ||
    die "bash 4.4 or later is needed (this is $BASH_VERSION)"
}

log() { printf '%s: %s\n' "$SCRIPT_NAME" "$*" >&2; }

# A progress message; silent under --plan, whose output is the calls.
step() {
  [ "$PLAN" = true ] || log "$@"
}

die() {
  log "error: $*"
  exit 1
}

# A mistake on the command line: exit status 2, as for an unknown option.
usage_error() {
  log "$*"
  log "run '$SCRIPT_NAME --help' for the options"
  exit 2
}

# The value of option $1, which must be the next argument: `x=$(option_value "$@")`.
option_value() {
  if [ $# -lt 2 ] || [ -z "$2" ] || [[ $2 == --* ]]; then
    usage_error "$1 needs a value"
  fi
  printf '%s' "$2"
}

# Checks option $1's value $2 against the extended regex $3, described as $4.
check_format() {
  [[ $2 =~ $3 ]] || usage_error "$1 must be $4, not '$2'"
}

# Checks that option $1's value $2 is a whole number from $3 to $4.
check_number() {
  local option=$1 value=$2 low=$3 high=$4
  [[ $value =~ ^[0-9]+$ ]] && [ "$value" -ge "$low" ] && [ "$value" -le "$high" ] ||
    usage_error "$option must be a whole number from $low to $high, not '$value'"
}

# Checks the cluster name: it becomes part of IAM, security group, S3 and SSM names.
check_cluster_name() {
  [[ $1 =~ ^[a-z0-9][a-z0-9-]{0,19}$ ]] ||
    usage_error "--cluster must be 1 to 20 lowercase letters, digits or '-', starting with a letter or digit, not '$1'"
}

# Prints the region: $1 (--region) if given, else the environment's, else the CLI profile's.
resolve_region() {
  local region=${1:-${AWS_REGION:-${AWS_DEFAULT_REGION:-}}}
  # Reads the local CLI configuration only; it makes no call.
  [ -n "$region" ] || region=$(aws configure get region 2>/dev/null || true)
  [ -n "$region" ] || usage_error "no region: give --region, or set AWS_REGION"
  [[ $region =~ ^[a-z]{2}(-[a-z]+)+-[0-9]+$ ]] || usage_error "'$region' is not a region name"
  printf '%s' "$region"
}

# Makes every AWS CLI call of this process go to $1: CLI v1 reads AWS_DEFAULT_REGION, v2 both.
use_region() {
  export AWS_REGION=$1 AWS_DEFAULT_REGION=$1
}

# Prints a command as one shell line, quoting only the arguments that need it. Placeholders
# such as <sg-id> stay readable: the plan shows calls, it is not a script to paste.
print_command() {
  local line="" word
  for word in "$@"; do
    if [[ $word =~ ^[A-Za-z0-9_./:=,@+%\<\>-]+$ ]]; then
      line+=" $word"
    elif [[ $word != *\'* ]]; then
      line+=" '$word'"
    elif [[ $word != *[\"\$\`\\!]* ]]; then
      line+=" \"$word\""
    else
      line+=" '${word//\'/\'\\\'\'}'"
    fi
  done
  printf '%s\n' "${line# }"
}

# A note in the plan for what the script would do besides AWS calls (files it would write).
plan_note() {
  [ "$PLAN" = false ] || printf '# %s\n' "$*" >&3
}

# What a lookup answers under --plan: PLACEHOLDER ($1) where the plan assumes the resources
# exist, nothing where it assumes they do not.
assumed() {
  if [ "$PLAN_EXISTING" = true ]; then printf '%s' "$1"; fi
}

# Prints an answer of the CLI's text output, where `None` means nothing.
print_answer() {
  [ "$1" = None ] || [ -z "$1" ] || printf '%s\n' "$1"
}

# Runs `aws ARGS...` and prints its answer. Under --plan it prints the call instead and answers
# PLACEHOLDER ($1): what the plan assumes (an id to be, "" for "absent"). Secrets never appear
# among the arguments: the scripts pass them as file:// paths.
aws_query() {
  local placeholder=$1 answer
  shift
  if [ "$PLAN" = true ]; then
    print_command aws "$@" >&3
    print_answer "$placeholder"
    return 0
  fi
  answer=$(aws "$@") || die "aws $1 $2 failed"
  print_answer "$answer"
}

# Like aws_query, for a call that names one resource (get-role, get-function, ...): prints
# nothing when AWS answers that the resource does not exist (an error matching the extended
# regex $1), and fails on any other error (no credentials, access denied). Such a call answers
# one page; a listing is paged, and the CLI's text output applies --query to each page, so
# `...| [0]` over a listing can print `None` lines before the answer.
aws_find() {
  local absent=$1 placeholder=$2 errors answer
  shift 2
  if [ "$PLAN" = true ]; then
    aws_query "$placeholder" "$@"
    return 0
  fi
  errors=$(mktemp)
  if answer=$(aws "$@" 2>"$errors"); then
    rm -f "$errors"
    print_answer "$answer"
    return 0
  fi
  if grep -Eq "$absent" "$errors"; then
    rm -f "$errors"
    return 0
  fi
  cat "$errors" >&2
  rm -f "$errors"
  die "aws $1 $2 failed"
}

# Runs `aws ARGS...` for its effect (or, under --plan, prints it).
aws_do() {
  aws_query "" "$@" >/dev/null
}

# Like aws_query, but tries again while the error matches the extended regex $1: AWS has not
# caught up yet (a new role, an instance still holding its network interface).
aws_retry() {
  local pattern=$1 placeholder=$2 attempt errors answer
  shift 2
  if [ "$PLAN" = true ]; then
    aws_query "$placeholder" "$@"
    return 0
  fi
  errors=$(mktemp)
  for ((attempt = 1; attempt <= RETRY_ATTEMPTS; attempt++)); do
    if answer=$(aws "$@" 2>"$errors"); then
      rm -f "$errors"
      print_answer "$answer"
      return 0
    fi
    grep -Eq "$pattern" "$errors" && [ "$attempt" -lt "$RETRY_ATTEMPTS" ] || break
    log "aws $1 $2: AWS has not caught up yet ($attempt/$RETRY_ATTEMPTS), trying again in ${RETRY_DELAY_SECONDS}s"
    sleep "$RETRY_DELAY_SECONDS"
  done
  cat "$errors" >&2
  rm -f "$errors"
  die "aws $1 $2 failed"
}

# The account id of the caller's credentials (IAM and SSM ARNs, the default bucket name).
account_id() {
  aws_query "<account-id>" sts get-caller-identity --query Account --output text
}

# The cluster tag as IAM, SSM and EC2 shorthand take it.
cluster_tag() {
  printf 'Key=%s,Value=%s' "$CLUSTER_TAG" "$CLUSTER"
}

# The ARN of role $1, or nothing. Whatever its path: a role of that name made by someone else
# is then found, and role_owner tells it apart.
role_arn() {
  aws_find '\(NoSuchEntity\)' "$(assumed "<role-arn>")" iam get-role --role-name "$1" \
    --query Role.Arn --output text
}

# Creates role $1, which AWS service $2 (ec2.amazonaws.com, ...) may assume, tagged with the
# cluster; prints its ARN.
create_role() {
  local trust
  trust=$(printf '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"%s"},"Action":"sts:AssumeRole"}]}' "$2")
  aws_query "<role-arn>" iam create-role --role-name "$1" --path "$IAM_PATH" \
    --assume-role-policy-document "$trust" --description "Crucial-rs cluster $CLUSTER" \
    --tags "$(cluster_tag)" --query Role.Arn --output text
}

# The cluster tag's value on role $1 (a role of the same name made by someone else is left
# alone); under --plan, when the plan assumes the resources exist, this cluster.
role_owner() {
  aws_query "$(assumed "$CLUSTER")" iam list-role-tags --role-name "$1" \
    --query "Tags[?Key=='$CLUSTER_TAG'].Value | [0]" --output text
}

# Deletes role $1 with its managed policy attachments and inline policies (IAM refuses to
# delete a role that still has any).
delete_role() {
  local role=$1 attached inline policy
  attached=$(aws_query "<policy-arn>" iam list-attached-role-policies --role-name "$role" \
    --query 'AttachedPolicies[].PolicyArn' --output text)
  inline=$(aws_query "<policy-name>" iam list-role-policies --role-name "$role" \
    --query 'PolicyNames' --output text)
  for policy in $attached; do
    aws_do iam detach-role-policy --role-name "$role" --policy-arn "$policy"
  done
  for policy in $inline; do
    aws_do iam delete-role-policy --role-name "$role" --policy-name "$policy"
  done
  aws_do iam delete-role --role-name "$role"
}

# The ARN partition of region $1 (aws, aws-cn, aws-us-gov).
partition() {
  case $1 in
    cn-*) printf aws-cn ;;
    us-gov-*) printf aws-us-gov ;;
    *) printf aws ;;
  esac
}
