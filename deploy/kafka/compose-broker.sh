#!/usr/bin/env bash
# Entry point of a Kafka node in deploy/compose.yaml (apache/kafka image): the same security as the
# local stack (deploy/local.py KafkaServer): SASL/SCRAM-SHA-512 for clients and between brokers,
# SASL/PLAIN on the controller listener, StandardAuthorizer with no access unless an ACL allows it.
# SCRAM users are created when the storage is formatted (KRaft), so every password comes from the
# environment on the first start; `python -m shared.topics create` (as admin) then adds the ACLs.
set -euo pipefail
: "${NODE_ID:?}" "${CLUSTER_ID:?}" "${KAFKA_ADMIN_PASSWORD:?}" "${KAFKA_CONTROLLER_PASSWORD:?}"
: "${KAFKA_AUDITOR_PASSWORD:?}" "${KAFKA_DECLARATIONS_PASSWORD:?}" "${KAFKA_REVIEW_PASSWORD:?}"
: "${KAFKA_RANKING_PASSWORD:?}" "${KAFKA_EXCHANGE_PASSWORD:?}"
props=/tmp/server.properties
umask 077
cat > "$props" <<EOF
process.roles=broker,controller
node.id=${NODE_ID}
controller.quorum.voters=1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093
listeners=SASL_PLAINTEXT://:9092,CONTROLLER://:9093
advertised.listeners=SASL_PLAINTEXT://kafka-${NODE_ID}:9092
listener.security.protocol.map=SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=SASL_PLAINTEXT
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="${KAFKA_ADMIN_PASSWORD}";
sasl.mechanism.controller.protocol=PLAIN
listener.name.controller.sasl.enabled.mechanisms=PLAIN
listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="controller" password="${KAFKA_CONTROLLER_PASSWORD}" user_controller="${KAFKA_CONTROLLER_PASSWORD}";
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:admin;User:controller
log.dirs=/var/lib/kafka/data
auto.create.topics.enable=false
num.partitions=12
default.replication.factor=3
min.insync.replicas=2
offsets.topic.replication.factor=3
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
group.initial.rebalance.delay.ms=0
EOF
scram=()
for user in admin auditor declarations review ranking exchange; do
  var="KAFKA_${user^^}_PASSWORD"
  scram+=(--add-scram "SCRAM-SHA-512=[name=${user},password=${!var}]")
done
/opt/kafka/bin/kafka-storage.sh format --ignore-formatted --cluster-id "$CLUSTER_ID" -c "$props" "${scram[@]}"
exec /opt/kafka/bin/kafka-server-start.sh "$props"
