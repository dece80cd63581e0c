// instructkit/data: instruction records, formats, templates, mixtures, splits, dedup.
export * from './config.ts';
export * from './convert.ts';
export * from './decontaminate.ts';
export * from './dedup.ts';
export * from './io.ts';
export * from './jobs.ts';
export * from './mix-files.ts';
export * from './mixture.ts';
export * from './records.ts';
export * from './split.ts';
export * from './split-files.ts';
export * from './stats.ts';
export * from './summaries.ts';
export * from './task-lists.ts';
export * from './text.ts';
