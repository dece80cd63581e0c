// instructkit/train: supervised fine-tuning and pretraining, reward models, DPO, ORPO, PPO and
// GRPO on one loop (packing, loss masks, LoRA, accumulation, checkpoints with exact resume),
// built on the engine.
//
//   const r = await trainSft(parseSftConfig({ model_name_or_path: 'models/tiny', train_file: 'sft.jsonl', output_dir: 'out' }));
export * from './data.ts';
export * from './dpo.ts';
export * from './dpo-loss.ts';
export * from './eval-loss.ts';
export * from './examples.ts';
export * from './grpo.ts';
export * from './loop.ts';
export * from './orpo.ts';
export * from './ppo.ts';
export { ppoLoss, ptxLoss } from './ppo-loss.ts';
export { gae, KlController, maskedWhiten, ppoTargets, shapeRewards } from './ppo-math.ts';
export * from './preference-tokenize.ts';
export * from './reward.ts';
export * from './rewards.ts';
export * from './rollout.ts';
export * from './sft.ts';
