-- 008: per trader, the LLM analysis it asks for (seed 000): the model tier and how many
-- candles of each interval the analysis sees (1..1000).

ALTER TABLE traders ADD COLUMN model_tier TEXT NOT NULL DEFAULT 'standard' CHECK (model_tier IN ('standard', 'fast'));
ALTER TABLE traders ADD COLUMN analysis_candles INTEGER NOT NULL DEFAULT 100
  CHECK (analysis_candles BETWEEN 1 AND 1000);
