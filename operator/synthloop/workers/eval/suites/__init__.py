"""The eval task's suites: multiple-choice log-likelihood, IFEval, generative accuracy, lm-eval."""
