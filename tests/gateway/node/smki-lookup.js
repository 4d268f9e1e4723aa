// Certificates looked up in a DCC Boxed SMKI as the DCC's own client does: BoxedKeyStore from
// @smartdcc/dccboxed-keystore (by EUI and key usage for a device, by serial for anything) and the
// package's own certificate search (by organisation EUI, role and usage). Reads one JSON object on
// stdin: {"smki": URL, "backing": keystore file, "queries": [{"eui", "usage"} | {"serial"} |
// {"org", "role", "usage"}]}; prints one JSON array, one answer per query: the certificates found
// (serial in hex, EUI, role, key usage, PEM), or null when none was.
'use strict'
const { BoxedKeyStore, KeyUsage } = require('@smartdcc/dccboxed-keystore')
const { search } = require('@smartdcc/dccboxed-keystore/dist/certificateSearch')

function describe(found) {
  const list = Array.isArray(found) ? found : [found]
  return list.map((r) => ({
    serial: r.serial.toString(16).toUpperCase(),
    eui: r.eui.toString().toUpperCase(),
    role: r.role === undefined ? null : r.role,
    keyUsage: r.keyUsage.map((u) => KeyUsage[u]),
    pem: r.certificate.toString(),
  }))
}

async function main() {
  const chunks = []
  for await (const chunk of process.stdin) chunks.push(chunk)
  const input = JSON.parse(Buffer.concat(chunks).toString('utf-8'))
  const store = await BoxedKeyStore.new(input.smki, undefined, input.backing)
  const answers = []
  try {
    for (const q of input.queries) {
      let found = null
      if (q.org !== undefined) {
        const results = await search({
          q: { CertificateSubjectName: q.org },
          CertificateRole: String(q.role),
          CertificateUsage: q.usage,
          CertificateStatus: 'I',
        }, input.smki)
        found = results.length ? results.map(({ meta, x509 }) => ({ ...meta, certificate: x509 })) : null
      } else if (q.serial !== undefined) {
        found = await store.query({ serial: BigInt('0x' + q.serial), lookup: 'certificate' })
      } else {
        found = await store.query({
          eui: q.eui,
          keyUsage: q.usage === 'KA' ? KeyUsage.keyAgreement : KeyUsage.digitalSignature,
          lookup: 'certificate',
        })
      }
      answers.push(found ? describe(found) : null)
    }
  } finally {
    await store.cleanup()
  }
  process.stdout.write(JSON.stringify(answers) + '\n')
}

main().catch((e) => {
  process.stderr.write(String(e && e.stack ? e.stack : e) + '\n')
  process.exit(1)
})
