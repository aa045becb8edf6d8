#!/usr/bin/env sh
# The least each principal needs (README.md, "Production Kafka"). Set BOOTSTRAP, and give
# admin.properties a super user's SASL_SSL client settings.
set -eu
TOPIC=${TOPIC:-mcp-jobs} GROUP=${GROUP:-mcp-job-controller} DLQ=${DLQ:-$TOPIC.dlq} RESULTS=${RESULTS:-mcp-results}
acl() { kafka-acls.sh --bootstrap-server "$BOOTSTRAP" --command-config admin.properties --add "$@"; }
acl --allow-principal User:controller --operation Read --operation Describe --operation DescribeConfigs --topic "$TOPIC"
acl --allow-principal User:controller --operation Read --group "$GROUP"
acl --allow-principal User:controller --operation Write --operation Describe --operation Create --operation Read --operation DescribeConfigs --topic "$DLQ"
acl --allow-principal User:controller --operation Write --operation Describe --topic "$RESULTS"
acl --allow-principal User:job --operation Read --operation Describe --topic "$TOPIC"
acl --allow-principal User:producer --operation Write --operation Describe --topic "$TOPIC"
