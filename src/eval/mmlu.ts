// MMLU in lm-evaluation-harness's default format: a per-subject description line, questions
// with lettered choices ending in "Answer:", few-shot examples from the dev split (first k), and
// the continuation " A" / " B" / ... scored by log-likelihood.
import { type Doc, makeTask, type Task } from './task.ts';

export interface MmluDoc extends Doc {
  question: string;
  choices: string[];
  /** Index of the correct choice. */
  answer: number;
}

/** "high_school_biology" → "high school biology", as the harness writes it in the description. */
export function subjectName(subject: string): string {
  return subject.replace(/_/g, ' ');
}

export function mmluTask(subject: string, test: MmluDoc[], dev: MmluDoc[], numFewshot = 5): Task {
  return makeTask(
    {
      task: `mmlu_${subject}`,
      category: subject,
      description: `The following are multiple choice questions (with answers) about ${subjectName(subject)}.\n\n`,
      doc_to_text:
        '{{question.strip()}}\nA. {{choices[0]}}\nB. {{choices[1]}}\nC. {{choices[2]}}\nD. {{choices[3]}}\nAnswer:',
      doc_to_choice: ['A', 'B', 'C', 'D'],
      doc_to_target: 'answer',
      target_delimiter: ' ',
      fewshot_delimiter: '\n\n',
      num_fewshot: numFewshot,
      fewshot_config: { sampler: 'first_n' },
      output_type: 'multiple_choice',
      metric_list: [{ metric: 'acc' }],
    },
    test,
    dev,
  );
}
