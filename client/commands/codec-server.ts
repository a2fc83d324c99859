/**
 * handover codec-server [--port 8081] [--host 127.0.0.1] [--origin http://127.0.0.1:8233 ...]
 *
 * Serves the payload codec (HANDOVER_CODEC_KEY / HANDOVER_CODEC_KEY_FILE) to the Temporal UI so it shows
 * encrypted runs in clear text to whoever can reach this endpoint: start the UI with
 * `--ui-codec-endpoint http://127.0.0.1:8081` (dev server) or set it in the UI's Codec Server settings.
 */
import { z } from 'zod';
import { AesGcmCodec, CodecKeyError, codecKeyFromEnv } from '../../codec/aes-gcm';
import { startCodecServer, type CodecServer } from '../../codec/server';
import { CliError, EXIT, sayFailure, type IO } from '../common';

export const CodecServerOptions = z.object({
  port: z.coerce.number().int().min(0).max(65535).default(8081),
  host: z.string().default('127.0.0.1'),
  origin: z.array(z.string()).default(['http://127.0.0.1:8233', 'http://localhost:8233']),
  json: z.boolean().default(false),
});
export type CodecServerOptions = z.input<typeof CodecServerOptions>;

export async function runCodecServer(raw: CodecServerOptions, io: IO, env: NodeJS.ProcessEnv = process.env): Promise<{ exitCode: number; server?: CodecServer }> {
  const o = CodecServerOptions.parse(raw);
  let key;
  try {
    key = codecKeyFromEnv(env);
  } catch (e) {
    if (!(e instanceof CodecKeyError)) throw e;
    sayFailure(o, io, new CliError(EXIT.refused, `refused (InvalidCodecKey): ${e.message}`));
    return { exitCode: EXIT.refused };
  }
  if (!key) {
    sayFailure(o, io, new CliError(EXIT.refused, 'refused (MissingCredential): no codec key: set HANDOVER_CODEC_KEY (32 bytes, base64; openssl rand -base64 32) or HANDOVER_CODEC_KEY_FILE'));
    return { exitCode: EXIT.refused };
  }
  const codec = new AesGcmCodec(key);
  const server = await startCodecServer(codec, { port: o.port, host: o.host, origins: o.origin });
  io.out(`codec endpoint ${server.url} (key ${codec.keyId}; CORS origins ${o.origin.join(', ')}); give it to the UI as its codec endpoint`);
  return { exitCode: EXIT.ok, server };
}
