// Worker-thread entry of the fuzz harness (see runner.ts).
import { workerMain } from './runner.ts';

await workerMain();
