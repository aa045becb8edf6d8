import kafkajs, { type Admin, type AclEntry } from 'kafkajs';
import { waitFor } from '../../src/shared/wait.js';

// kafkajs is CommonJS: under ESM its enums come through the default import.
const { AclOperationTypes, AclPermissionTypes, AclResourceTypes, ResourcePatternTypes } = kafkajs;

/** The names the product's ACLs are about; tests pass fresh ones. */
export interface ProductAclNames {
  /** The source topic (KAFKA_TOPIC): the controller consumes it, each job reads one record of it. */
  topic: string;
  /** The controller's consumer group (KAFKA_CONSUMER_GROUP). */
  group: string;
  /** The dead-letter topic (DLQ_TOPIC; the controller's default is `<topic>.dlq`). */
  deadLetterTopic: string;
  /** RESULTS_TOPIC, when the deployment sets it. */
  resultsTopic?: string;
  /**
   * Jobs re-run from a dead-letter record (replay) read that record from the dead-letter
   * topic; grant it only where replays are used. Off by default: a job reads the source only.
   */
  jobReadsDeadLetter?: boolean;
  /** Principals, if the deployment names them otherwise. */
  principals?: { controller?: string; job?: string; producer?: string };
}

export type AclOperation = 'Read' | 'Write' | 'Create' | 'Describe' | 'DescribeConfigs';

/** One kafka-acls.sh line: ALLOW `operations` to `principal` on one literal resource, any host. */
export interface AclRule {
  principal: string;
  resource: 'topic' | 'group';
  name: string;
  operations: AclOperation[];
  /** What the product does that needs it. */
  why: string;
}

/**
 * The least the product's principals need, as documented for operators. DESCRIBE is listed
 * next to READ/WRITE although Kafka's authorizer implies it from them: the lines then say
 * plainly that metadata and ListOffsets are needed, and hold under authorizers that imply less.
 */
export function productAcls(n: ProductAclNames): AclRule[] {
  const controller = n.principals?.controller ?? 'User:controller';
  const job = n.principals?.job ?? 'User:job';
  const producer = n.principals?.producer ?? 'User:producer';
  const rules: AclRule[] = [
    {
      principal: controller,
      resource: 'topic',
      name: n.topic,
      operations: ['Read', 'Describe', 'DescribeConfigs'],
      why: 'consume the source topic (metadata, ListOffsets, Fetch); read its max.message.bytes for the dead-letter topic',
    },
    { principal: controller, resource: 'group', name: n.group, operations: ['Read'], why: 'join the consumer group, commit and fetch its offsets' },
    // CREATE: the controller makes its own dead-letter topic at start with the source's
    // partition count (brokers in production seldom auto-create topics). READ: at start it
    // reads back the dead-letter records of uncommitted messages so a restart does not write
    // them twice, and a replay reads a dead-letter record.
    {
      principal: controller,
      resource: 'topic',
      name: n.deadLetterTopic,
      operations: ['Write', 'Describe', 'Create', 'Read', 'DescribeConfigs'],
      why: 'create the dead-letter topic, write dead-letter records, read them back on restart and for replays',
    },
  ];
  if (n.resultsTopic) {
    // No CREATE: others consume the results topic, so its partitions and retention are the
    // operator's to choose; a missing topic shows up as a failed send.
    rules.push({ principal: controller, resource: 'topic', name: n.resultsTopic, operations: ['Write', 'Describe'], why: 'write one record per finished Job' });
  }
  rules.push({
    principal: job,
    resource: 'topic',
    name: n.topic,
    operations: ['Read', 'Describe'],
    why: 'ListOffsets and one Fetch from the partition leader; no group, no writes',
  });
  if (n.jobReadsDeadLetter) {
    rules.push({
      principal: job,
      resource: 'topic',
      name: n.deadLetterTopic,
      operations: ['Read', 'Describe'],
      why: 'a replayed job reads its message from the dead-letter record',
    });
  }
  rules.push({ principal: producer, resource: 'topic', name: n.topic, operations: ['Write', 'Describe'], why: 'produce messages to the source topic' });
  return rules;
}

const operationCode: Record<AclOperation, number> = {
  Read: AclOperationTypes.READ,
  Write: AclOperationTypes.WRITE,
  Create: AclOperationTypes.CREATE,
  Describe: AclOperationTypes.DESCRIBE,
  DescribeConfigs: AclOperationTypes.DESCRIBE_CONFIGS,
};

/** The rules as kafkajs `createAcls` entries (one per operation). */
export function aclEntries(rules: AclRule[]): AclEntry[] {
  return rules.flatMap((r) =>
    r.operations.map((op) => ({
      resourceType: r.resource === 'topic' ? AclResourceTypes.TOPIC : AclResourceTypes.GROUP,
      resourceName: r.name,
      resourcePatternType: ResourcePatternTypes.LITERAL,
      principal: r.principal,
      host: '*',
      operation: operationCode[op],
      permissionType: AclPermissionTypes.ALLOW,
    })),
  );
}

/**
 * Creates the product's ACLs through an admin client connected as a super user, and resolves
 * once the broker's authorizer answers with all of them (CreateAcls is applied by the KRaft
 * controller; the broker sees it when the metadata reaches it).
 */
export async function createProductAcls(admin: Admin, names: ProductAclNames): Promise<AclRule[]> {
  const rules = productAcls(names);
  const entries = aclEntries(rules);
  await admin.createAcls({ acl: entries });
  await waitFor(
    async () => {
      const found = await admin.describeAcls({
        resourceType: AclResourceTypes.ANY,
        resourcePatternType: ResourcePatternTypes.LITERAL,
        operation: AclOperationTypes.ANY,
        permissionType: AclPermissionTypes.ALLOW,
      });
      const have = new Set(found.resources.flatMap((res) => res.acls.map((a) => `${res.resourceType}/${res.resourceName}/${a.principal}/${a.operation}`)));
      return entries.every((e) => have.has(`${e.resourceType}/${e.resourceName}/${e.principal}/${e.operation}`));
    },
    { timeoutMs: 15_000, intervalMs: 100, description: 'the new ACLs to reach the broker' },
  );
  return rules;
}

/**
 * The rules as `kafka-acls.sh` commands, the form an operator runs (and the README shows).
 * `commandConfig` is a client properties file with the admin's SASL_SSL settings.
 */
export function kafkaAclsCommands(rules: AclRule[], bootstrap = '$BOOTSTRAP', commandConfig = 'admin.properties'): string[] {
  return rules.map((r) =>
    [
      'kafka-acls.sh',
      '--bootstrap-server',
      bootstrap,
      '--command-config',
      commandConfig,
      '--add',
      '--allow-principal',
      r.principal,
      ...r.operations.flatMap((op) => ['--operation', op]),
      `--${r.resource}`,
      r.name,
    ].join(' '),
  );
}
