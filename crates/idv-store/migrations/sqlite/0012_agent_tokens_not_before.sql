-- 0012: an agent's tokens-not-before instant (microseconds). Access tokens
-- naming the agent that were issued at or before it stay dead, even once the
-- agent is active again: set on suspension, resumption and compromise.
ALTER TABLE agents ADD COLUMN tokens_not_before INTEGER;
