// The function suite against the sandbox runtime, over HTTP.
import { functionSuite } from "./functions.suite";
import { runtimeBackend } from "./runtime.helper";

functionSuite(runtimeBackend);
