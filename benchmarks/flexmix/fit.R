# Fit a mixture of Gaussian linear regressions with flexmix, for benchmarks/flexmix_compare.py.
# Usage: Rscript fit.R data.csv k concomitant(0/1) nrep out.txt
# data.csv: columns x1..xd, y. Prints the best of nrep EM runs (stepFlexmix),
# tolerance 1e-6 (flexmix's relative rule), no minprior, no penalty.
suppressMessages(library(flexmix))
args <- commandArgs(TRUE)
d <- read.csv(args[1])
k <- as.integer(args[2]); conc <- args[3] == "1"; nrep <- as.integer(args[4])
xs <- setdiff(names(d), "y")
f <- as.formula(paste("y ~", paste(xs, collapse = " + ")))
ctrl <- list(tolerance = 1e-6, iter.max = 2000, minprior = 0)
set.seed(0)
cpu <- system.time({
  if (conc) {
    fit <- stepFlexmix(f, data = d, k = k, nrep = nrep, verbose = FALSE, control = ctrl,
                       concomitant = FLXPmultinom(as.formula(paste("~", paste(xs, collapse = " + ")))))
  } else {
    fit <- stepFlexmix(f, data = d, k = k, nrep = nrep, verbose = FALSE, control = ctrl)
  }
})[["user.self"]]
p <- parameters(fit)
out <- c(sprintf("loglik %.10f", as.numeric(logLik(fit))), sprintf("cpu %.4f", cpu),
         sprintf("k %d", ncol(p)))
for (j in seq_len(ncol(p))) out <- c(out, paste("comp", j, paste(sprintf("%.10g", p[, j]), collapse = " ")))
writeLines(out, args[5])
