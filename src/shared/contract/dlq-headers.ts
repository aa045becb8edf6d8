/**
 * Header names on dead-letter records, written by the controller and read by `serve` and any
 * consumer (`kafkacat -J`): part of the contract, so declared once here.
 */
export const DlqHeader = {
  reason: 'mcp.dlq.reason',
  error: 'mcp.dlq.error',
  topic: 'mcp.dlq.source.topic',
  partition: 'mcp.dlq.source.partition',
  offset: 'mcp.dlq.source.offset',
  at: 'mcp.dlq.timestamp',
  stage: 'mcp.dlq.stage',
} as const;
