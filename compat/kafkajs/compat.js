// Sluice compatibility suite for kafkajs: runs each scenario against the
// broker in $SLUICE_BROKER (host:port), prints one line per scenario and
// "N passed, M failed, K skipped", and exits non-zero if any failed.
//
// $SLUICE_APIS is the comma-separated list of API keys the broker
// advertises (scripts/kafkajs-test.sh gets it from `sluice cluster info
// --apis --format json`); scenarios that need an API the broker does not
// have yet (idempotence: InitProducerId, 22; transactions: 22-28) are
// skipped, not failed, and run as soon as the broker advertises them.
'use strict'

const assert = require('node:assert/strict')
const { Kafka, CompressionTypes, CompressionCodecs, Partitioners, logLevel } = require('kafkajs')

const broker = process.env.SLUICE_BROKER
if (!broker) {
  console.error('SLUICE_BROKER (host:port) is not set')
  process.exit(2)
}
const apis = new Set((process.env.SLUICE_APIS || '').split(',').filter(Boolean).map(Number))
const hasApis = (...keys) => keys.every((k) => apis.has(k))

// Codecs: none and gzip are built into kafkajs; snappy comes from the
// kafkajs-snappy package. lz4 (kafkajs-lz4 -> native lz4) and zstd
// (@kafkajs/zstd -> native cppzst) need node-gyp builds and are not pinned.
const codecs = [
  ['none', CompressionTypes.None],
  ['gzip', CompressionTypes.GZIP],
]
try {
  CompressionCodecs[CompressionTypes.Snappy] = require('kafkajs-snappy')
  codecs.push(['snappy', CompressionTypes.Snappy])
} catch (e) {
  console.log(`note: kafkajs-snappy not available (${e.message}); snappy not tested`)
}

const kafka = new Kafka({
  clientId: 'sluice-compat',
  brokers: [broker],
  // Expected errors (TOPIC_ALREADY_EXISTS, a coordinator still loading)
  // would be logged at ERROR; KAFKAJS_LOG=1 shows them.
  logLevel: process.env.KAFKAJS_LOG ? logLevel.DEBUG : logLevel.NOTHING,
  retry: { retries: 8, initialRetryTime: 100 },
})
const run = `${process.pid}-${Date.now()}`
const topicName = (name) => `kafkajs-${name}-${run}`
const groupName = (name) => `kafkajs-${name}-${run}`

const withTimeout = (p, ms, what) =>
  Promise.race([p, new Promise((_, rej) => setTimeout(() => rej(new Error(`${what}: timed out after ${ms} ms`)), ms).unref())])

// consumeN runs a group consumer until it has n messages (or times out),
// then disconnects (committing, with autoCommit) and returns them.
async function consumeN(topic, groupId, n, opts = {}) {
  const consumer = kafka.consumer({ groupId, ...opts.consumer })
  const got = []
  await consumer.connect()
  try {
    await consumer.subscribe({ topic, fromBeginning: opts.fromBeginning ?? true })
    let resolve
    const done = new Promise((r) => { resolve = r })
    if (n === 0) resolve()
    await consumer.run({
      autoCommit: opts.autoCommit ?? true,
      eachMessage: async ({ partition, message }) => {
        got.push({
          partition,
          offset: Number(message.offset),
          key: message.key === null ? null : message.key.toString(),
          value: message.value.toString(),
          headers: Object.fromEntries(Object.entries(message.headers || {}).map(([k, v]) => [k, v.toString()])),
        })
        if (got.length >= n) resolve()
      },
    })
    await withTimeout(done, opts.timeout ?? 30000, `consume ${n} from ${topic}`)
    if (opts.settle) await new Promise((r) => setTimeout(r, opts.settle))
  } finally {
    await consumer.disconnect()
  }
  return got
}

async function withAdmin(fn) {
  const admin = kafka.admin()
  await admin.connect()
  try {
    return await fn(admin)
  } finally {
    await admin.disconnect()
  }
}

async function withProducer(opts, fn) {
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner, ...opts })
  await producer.connect()
  try {
    return await fn(producer)
  } finally {
    await producer.disconnect()
  }
}

const scenarios = []
const scenario = (name, fn, skip) => scenarios.push({ name, fn, skip })

scenario('metadata: describeCluster and topic metadata', async () => {
  await withAdmin(async (admin) => {
    const cluster = await admin.describeCluster()
    assert.equal(cluster.brokers.length, 1, JSON.stringify(cluster))
    const [host, port] = broker.split(':')
    assert.equal(cluster.brokers[0].host, host)
    assert.equal(cluster.brokers[0].port, Number(port))
    assert.equal(cluster.controller, cluster.brokers[0].nodeId)
    assert.ok(cluster.clusterId, 'no cluster id')
    const topic = topicName('meta')
    await admin.createTopics({ topics: [{ topic, numPartitions: 2 }], waitForLeaders: true })
    const md = await admin.fetchTopicMetadata({ topics: [topic] })
    assert.equal(md.topics.length, 1)
    assert.equal(md.topics[0].partitions.length, 2)
    for (const p of md.topics[0].partitions) {
      assert.equal(p.leader, cluster.brokers[0].nodeId)
      assert.deepEqual(p.isr, [cluster.brokers[0].nodeId])
    }
  })
})

scenario('admin: create, describe (configs), delete topic', async () => {
  await withAdmin(async (admin) => {
    const topic = topicName('admin')
    const created = await admin.createTopics({
      topics: [{ topic, numPartitions: 3, configEntries: [{ name: 'retention.ms', value: '3600000' }] }],
      waitForLeaders: true,
    })
    assert.equal(created, true)
    assert.ok((await admin.listTopics()).includes(topic), 'created topic not listed')
    const again = await admin.createTopics({ topics: [{ topic, numPartitions: 3 }] })
    assert.equal(again, false, 'creating an existing topic reported success')
    const md = await admin.fetchTopicMetadata({ topics: [topic] })
    assert.equal(md.topics[0].partitions.length, 3)
    const cfg = await admin.describeConfigs({ resources: [{ type: 2, name: topic, configNames: ['retention.ms', 'cleanup.policy'] }] })
    const entries = Object.fromEntries(cfg.resources[0].configEntries.map((e) => [e.configName, e.configValue]))
    assert.equal(entries['retention.ms'], '3600000')
    assert.equal(entries['cleanup.policy'], 'delete')
    await admin.alterConfigs({ resources: [{ type: 2, name: topic, configEntries: [{ name: 'retention.ms', value: '7200000' }] }] })
    const cfg2 = await admin.describeConfigs({ resources: [{ type: 2, name: topic, configNames: ['retention.ms'] }] })
    assert.equal(cfg2.resources[0].configEntries[0].configValue, '7200000')
    await admin.createPartitions({ topicPartitions: [{ topic, count: 4 }] })
    assert.equal((await admin.fetchTopicMetadata({ topics: [topic] })).topics[0].partitions.length, 4)
    await admin.deleteTopics({ topics: [topic], timeout: 10000 })
    assert.ok(!(await admin.listTopics()).includes(topic), 'deleted topic still listed')
  })
})

// Produced by the codec scenario, read back by the consume scenario.
const codecTopic = topicName('codecs')
const produced = []

scenario(`keyed produce with every codec (${codecs.map((c) => c[0]).join(', ')})`, async () => {
  await withAdmin((admin) => admin.createTopics({ topics: [{ topic: codecTopic, numPartitions: 3 }], waitForLeaders: true }))
  await withProducer({}, async (producer) => {
    for (const [name, compression] of codecs) {
      const messages = []
      for (let i = 0; i < 50; i++) {
        messages.push({ key: `key${i % 7}`, value: `${name} value ${i}`, headers: { codec: name } })
      }
      const res = await producer.send({ topic: codecTopic, compression, acks: -1, messages })
      assert.ok(res.length > 0 && res.every((r) => r.errorCode === 0), `${name}: ${JSON.stringify(res)}`)
      produced.push(...messages)
    }
  })
  await withAdmin(async (admin) => {
    const offs = await admin.fetchTopicOffsets(codecTopic)
    const total = offs.reduce((s, o) => s + Number(o.high) - Number(o.low), 0)
    assert.equal(total, produced.length)
  })
})

scenario('consume from beginning: every record, keys, values and headers exact, per-key order', async () => {
  assert.ok(produced.length > 0, 'nothing produced (codec scenario failed)')
  const got = await consumeN(codecTopic, groupName('from-beginning'), produced.length, { settle: 300 })
  assert.equal(got.length, produced.length, 'record count')
  // Same key, same partition, and within a key the order of production.
  const byKey = (list) => {
    const m = new Map()
    for (const r of list) m.set(r.key, [...(m.get(r.key) || []), r.value])
    return m
  }
  assert.deepEqual(byKey(got), byKey(produced))
  const partOfKey = new Map()
  for (const r of got) {
    if (partOfKey.has(r.key)) assert.equal(partOfKey.get(r.key), r.partition, `key ${r.key} on two partitions`)
    partOfKey.set(r.key, r.partition)
    assert.equal(r.headers.codec, r.value.split(' ')[0])
  }
})

scenario('group consume with commits: a second member of the group reads only new records', async () => {
  const topic = topicName('group')
  const groupId = groupName('group')
  await withAdmin((admin) => admin.createTopics({ topics: [{ topic, numPartitions: 2 }], waitForLeaders: true }))
  const batch = (from, n) => Array.from({ length: n }, (_, i) => ({ key: `k${(from + i) % 5}`, value: `v${from + i}` }))
  await withProducer({}, (p) => p.send({ topic, messages: batch(0, 40) }))
  const first = await consumeN(topic, groupId, 40)
  assert.equal(first.length, 40)
  await withAdmin(async (admin) => {
    const committed = await admin.fetchOffsets({ groupId, topics: [topic] })
    const high = await admin.fetchTopicOffsets(topic)
    const hw = Object.fromEntries(high.map((o) => [o.partition, o.high]))
    for (const p of committed[0].partitions) assert.equal(p.offset, hw[p.partition], `partition ${p.partition} committed`)
    const groups = (await admin.listGroups()).groups.map((g) => g.groupId)
    assert.ok(groups.includes(groupId), 'group not listed')
    const desc = await admin.describeGroups([groupId])
    assert.equal(desc.groups[0].state, 'Empty')
  })
  await withProducer({}, (p) => p.send({ topic, messages: batch(40, 10) }))
  const second = await consumeN(topic, groupId, 10, { settle: 1000 })
  assert.deepEqual(second.map((r) => r.value).sort(), batch(40, 10).map((m) => m.value).sort(), 're-read after commit')
  await withAdmin(async (admin) => {
    await admin.resetOffsets({ groupId, topic, earliest: true })
    await admin.deleteGroups([groupId])
    assert.ok(!(await admin.listGroups()).groups.some((g) => g.groupId === groupId), 'deleted group still listed')
  })
})

scenario('idempotent produce', async () => {
  const topic = topicName('idempotent')
  await withAdmin((admin) => admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true }))
  await withProducer({ idempotent: true, maxInFlightRequests: 1 }, async (p) => {
    for (let i = 0; i < 5; i++) {
      await p.send({ topic, acks: -1, messages: [{ key: 'k', value: `v${i}` }, { key: 'k', value: `w${i}` }] })
    }
  })
  const got = await consumeN(topic, groupName('idempotent'), 10, { settle: 300 })
  assert.deepEqual(got.map((r) => r.value), [0, 1, 2, 3, 4].flatMap((i) => [`v${i}`, `w${i}`]))
  assert.deepEqual(got.map((r) => r.offset), [...Array(10).keys()])
}, !hasApis(22) && 'broker does not advertise InitProducerId (22) yet')

scenario('transaction: committed records visible, aborted ones not (read_committed)', async () => {
  const topic = topicName('txn')
  await withAdmin((admin) => admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true }))
  await withProducer({ transactionalId: `txn-${run}`, idempotent: true, maxInFlightRequests: 1 }, async (p) => {
    const t1 = await p.transaction()
    await t1.send({ topic, messages: [{ value: 'committed-1' }, { value: 'committed-2' }] })
    await t1.commit()
    const t2 = await p.transaction()
    await t2.send({ topic, messages: [{ value: 'aborted' }] })
    await t2.abort()
    const t3 = await p.transaction()
    await t3.send({ topic, messages: [{ value: 'committed-3' }] })
    await t3.commit()
  })
  const got = await consumeN(topic, groupName('txn'), 3, { settle: 500, consumer: { readUncommitted: false } })
  assert.deepEqual(got.map((r) => r.value), ['committed-1', 'committed-2', 'committed-3'])
}, !hasApis(22, 24, 25, 26, 28) && 'broker does not advertise the transaction APIs (22, 24-26, 28) yet')

async function main() {
  let passed = 0
  let failed = 0
  let skipped = 0
  for (const s of scenarios) {
    if (s.skip) {
      console.log(`SKIP ${s.name}: ${s.skip}`)
      skipped++
      continue
    }
    const start = Date.now()
    try {
      await withTimeout(s.fn(), 90000, s.name)
      console.log(`PASS ${s.name} (${Date.now() - start} ms)`)
      passed++
    } catch (e) {
      console.log(`FAIL ${s.name}: ${e && e.stack ? e.stack : e}`)
      failed++
    }
  }
  console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`)
  process.exit(failed > 0 ? 1 : 0)
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
