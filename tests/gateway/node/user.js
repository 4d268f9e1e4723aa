// A DCC User built only on the DCC's open-source packages, as the dccboxed-send and
// dccboxed-receive Node-RED nodes are: constructDuis, signDuis, an HTTP POST, validateDuis and
// parseDuis, and a Receive Response endpoint that validates and parses what the DCC POSTs.
//
// Line protocol: prints {"receiver": URL} once its endpoint listens; reads one JSON job on stdin:
//   {"services": {"serviceS", "serviceD", "serviceT"}, "smki": URL,
//    "rsa": {"eui", "cert", "key"},            the RSA signs through the jar with its own key
//    "supplier": {"eui", "gbcsKey"},           the Supplier signs with the jar's built-in ZAZ1 key
//    "updates": [{"image": base64, "version", "devices": [dashed EUI, ...]}, ...],
//    "esme": dashed EUI, "hash": hex,          the ESME the Supplier reads and activates
//    "backing": an empty keystore file, "timeoutMs"}
// then prints one JSON object: what each request was answered, and what the receiver accepted
// (kind, code, device) and refused (with the reason).
'use strict'
const http = require('node:http')
const crypto = require('node:crypto')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const readline = require('node:readline')
const { spawnSync } = require('node:child_process')
const { constructDuis, parseDuis } = require('@smartdcc/duis-parser')
const { signDuis, validateDuis } = require('@smartdcc/duis-sign-wrap')
const { BoxedKeyStore } = require('@smartdcc/dccboxed-keystore')

const jar = require.resolve('@smartdcc/duis-sign-wrap/dist/tool.jar')
const accepted = []
const refused = []
const waiters = []
let counter = BigInt(Date.now()) * 1000n

function request(originatorId, targetId, cv, sr, body) {
  counter += 1n
  return constructDuis('simplified', {
    header: { type: 'request', requestId: { originatorId, targetId, counter },
              commandVariant: cv, serviceReference: sr, serviceReferenceVariant: sr },
    body,
  }, '5.4')
}

// The RSA has no ZAZ1 key: the same jar, given its certificate and key (`Sign - rsa.pem rsa.key`).
function signWithOwnKey(xml, cert, key) {
  const done = spawnSync('java', ['-cp', jar, 'uk.co.smartdcc.boxed.xmldsig.Sign', '-',
                                  '--preserveCounter', cert, key], { input: xml })
  if (done.status !== 0) throw new Error('Sign failed: ' + done.stderr.toString())
  return done.stdout.toString('utf-8')
}

function post(url, xml) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', headers: { 'Content-Type': 'application/xml' } },
      (res) => {
        const chunks = []
        res.on('data', (c) => chunks.push(c))
        res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString('utf-8') }))
      })
    req.on('error', reject)
    req.end(xml)
  })
}

async function send(url, xml) {
  const answer = await post(url, xml)
  if (answer.status !== 200) throw new Error(`HTTP ${answer.status} from ${url}`)
  const parsed = parseDuis('simplified', await validateDuis({ xml: answer.body }))
  return parsed
}

// -- the Receive Response endpoint ---------------------------------------------------------

const S1SP_PARTS = ['SMETS1SignedResponse', 'S1SPAlert']
let keyStore = null

// A SMETS1 message: the S1SP signed its element as a document of its own, and the DCC's envelope
// is not signed; the one step a User does is to take that element out, with the envelope's
// namespace declarations, and validate it with the S1SP's certificate from the SMKI.
async function validateS1spPart(xml) {
  for (const name of S1SP_PARTS) {
    const open = xml.search(new RegExp(`<([A-Za-z0-9]+:)?${name}[ >]`))
    if (open < 0) continue
    const prefix = (xml.slice(open).match(new RegExp(`^<([A-Za-z0-9]+:)?${name}`))[1] || '')
    const close = xml.indexOf(`</${prefix}${name}>`, open)
    const rootTag = xml.slice(xml.indexOf('<', xml.indexOf('?>') + 2)).match(/^<[^>]*>/)[0]
    const declarations = rootTag.match(/\sxmlns(:[A-Za-z0-9]+)?="[^"]*"/g) || []
    let element = xml.slice(open, close + `</${prefix}${name}>`.length)
    const head = element.match(/^<[^>]*>/)[0]
    const own = declarations.filter((d) => !head.includes(d.trim()))
    element = head.replace(new RegExp(`^<${prefix}${name}`), `<${prefix}${name}${own.join('')}`) +
      element.slice(head.length)
    const serial = element.match(/X509SerialNumber>(\d+)</)[1]
    const found = await keyStore.query({ serial: BigInt(serial), lookup: 'certificate' })
    if (!found) throw new Error(`the SMKI holds no certificate ${serial}`)
    const certFile = path.join(os.tmpdir(), `s1sp-${process.pid}-${serial}.pem`)
    fs.writeFileSync(certFile, found.certificate.toString())
    const done = spawnSync('java', ['-cp', jar, 'uk.co.smartdcc.boxed.xmldsig.Validate', '-', certFile],
                           { input: element })
    if (done.status !== 0) throw new Error('S1SP signature: ' + done.stderr.toString())
    return element
  }
  return null
}

function classify(parsed, xml) {
  const body = parsed.body || {}
  if (body.DCCAlertMessage) {
    const dcc = body.DCCAlertMessage
    const text = JSON.stringify(dcc)
    const target = text.match(/"(?:TargetDeviceID|DeviceID)":"([^"]+)"/)
    const device = target ? target[1] : null
    return { kind: 'dcc-alert', code: dcc.DCCAlertCode, device }
  }
  if (body.DeviceAlertMessage) {
    // the device is the GBCS alert's originator: DF 09 CRA counter(8) 08 EUI(8) ...
    const gbcs = Buffer.from(body.DeviceAlertMessage.GBCSPayload, 'base64')
    const device = gbcs.subarray(12, 20).toString('hex').toUpperCase().replace(/(..)(?!$)/g, '$1-')
    return { kind: 'device-alert', code: String(body.DeviceAlertMessage.AlertCode), device }
  }
  const smets1 = xml.match(/GBCSHexAlertCode>([0-9A-Fa-f]{4})</)
  if (smets1) {
    const device = xml.match(/BusinessOriginatorID>([^<]+)</)[1]
    return { kind: 'device-alert', code: smets1[1].toUpperCase(), device }
  }
  return { kind: 'response', code: parsed.header.responseCode }
}

async function receive(xml) {
  let parsed
  try {
    parsed = parseDuis('simplified', await validateDuis({ xml }))
  } catch (e) {
    const part = await validateS1spPart(xml)
    if (part === null) throw e
    parsed = parseDuis('simplified', xml)
  }
  const entry = classify(parsed, xml)
  accepted.push(entry)
  for (const w of waiters.slice()) w()
}

const server = http.createServer((req, res) => {
  const chunks = []
  req.on('data', (c) => chunks.push(c))
  req.on('end', () => {
    receive(Buffer.concat(chunks).toString('utf-8')).then(
      () => { res.writeHead(200); res.end() },
      (e) => { refused.push(String(e.message).slice(0, 300)); res.writeHead(400); res.end() })
  })
})

function until(predicate, timeoutMs, what) {
  return new Promise((resolve, reject) => {
    const check = () => {
      if (predicate()) {
        waiters.splice(waiters.indexOf(check), 1)
        clearTimeout(timer)
        resolve()
      }
    }
    const timer = setTimeout(() => {
      waiters.splice(waiters.indexOf(check), 1)
      reject(new Error(`timed out waiting for ${what}; accepted ${JSON.stringify(accepted)}; refused ${JSON.stringify(refused)}`))
    }, timeoutMs)
    waiters.push(check)
    check()
  })
}

const has = (kind, code, device) => () =>
  accepted.some((a) => a.kind === kind && a.code === code && (device === undefined || a.device === device))

// -- the User's requests -------------------------------------------------------------------

async function run(job) {
  keyStore = await BoxedKeyStore.new(job.smki, undefined, job.backing)
  const answers = {}
  // RSA: 11.1 Update Firmware (CV 8, serviceD) to an ESME, a GSME and a SMETS1 device (one
  // request per image: an ESME's image type is not a GSME's).
  answers.update = []
  for (const u of job.updates) {
    const update = request(job.rsa.eui, '90-B3-D5-1F-30-00-00-02', 8, '11.1', {
      UpdateFirmware: { FirmwareImage: u.image, FirmwareVersion: u.version, DeviceIDList: u.devices.join(' ') },
    })
    const answer = await send(job.services.serviceD, signWithOwnKey(update, job.rsa.cert, job.rsa.key))
    answers.update.push(answer.header.responseCode)
  }
  for (const device of job.updates.flatMap((u) => u.devices)) {
    await until(has('dcc-alert', 'N60', device), job.timeoutMs, `N60 for ${device}`)
    await until(has('device-alert', '8F72', device), job.timeoutMs, `8F72 from ${device}`)
  }
  // Supplier: 11.2 Read Firmware Version (CV 1, serviceS), signed with the built-in ZAZ1 key.
  const read = request(job.supplier.eui, job.esme, 1, '11.2', { ReadFirmwareVersion: '' })
  answers.read = (await send(job.services.serviceS, await signDuis({ xml: read, preserveCounter: true }))).header.responseCode
  // Supplier: 11.3 Activate Firmware, CV 4 through serviceT (I0 with the pre-command) ...
  const transform = request(job.supplier.eui, job.esme, 4, '11.3', { ActivateFirmware: { FirmwareHash: job.hash } })
  const pre = await send(job.services.serviceT, await signDuis({ xml: transform, preserveCounter: true }))
  answers.transform = pre.header.responseCode
  const payload = JSON.stringify(pre.body).match(/"GBCSPayload":"([^"]+)"/)[1]
  // ... the pre-command signed with the Supplier's GBCS key (general signing: the bytes after DF,
  // then 0x40 and r||s), and sent back as CV 5 through serviceS.
  const command = Buffer.from(payload, 'base64')
  const key = crypto.createPrivateKey(fs.readFileSync(job.supplier.gbcsKey))
  const signature = crypto.sign('sha256', command.subarray(1), { key, dsaEncoding: 'ieee-p1363' })
  const signedCommand = Buffer.concat([command, Buffer.from([0x40]), signature]).toString('base64')
  const cv5 = request(job.supplier.eui, job.esme, 5, '11.3', { SignedPreCommand: { GBCSPayload: signedCommand } })
  answers.activate = (await send(job.services.serviceS, await signDuis({ xml: cv5, preserveCounter: true }))).header.responseCode
  await until(has('device-alert', '8F43', job.esme), job.timeoutMs, `8F43 from ${job.esme}`)
  await keyStore.cleanup()
  return answers
}

async function main() {
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  process.stdout.write(JSON.stringify({ receiver: `http://127.0.0.1:${server.address().port}/smartdcc/duis` }) + '\n')
  const lines = readline.createInterface({ input: process.stdin })
  const job = JSON.parse(await new Promise((resolve) => lines.once('line', resolve)))
  let answers = null
  let error = null
  try {
    answers = await run(job)
  } catch (e) {
    error = String(e && e.message ? e.message : e)
  }
  process.stdout.write(JSON.stringify({ answers, accepted, refused, error }) + '\n')
  server.close()
  lines.close()
  process.exit(0)
}

main()
