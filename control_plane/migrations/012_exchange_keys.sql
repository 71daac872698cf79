-- 012: each subscriber's Binance API key and secret, encrypted at rest (issue 23, part 1).
--
-- Both are Fernet tokens (AES-128-CBC + HMAC-SHA256, the `cryptography` package) under the
-- control plane's EXCHANGE_KEYS_SECRET; `key_hint` is the API key's last four characters, for
-- display. Machines are never granted this table: their copy arrives as app secrets sealed
-- under a key of their own (control_plane.exchange_keys).

CREATE TABLE exchange_keys (
  user_id UUID PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
  api_key_token BYTEA NOT NULL,
  api_secret_token BYTEA NOT NULL,
  key_hint TEXT NOT NULL,
  updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
