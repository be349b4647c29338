# Whole-fit speed against skmoe, for benchmarks/flexmix_speed.py.
# Usage: Rscript speed.R train.csv k nrep tolerance iter_max out.txt
# train.csv: columns x1..xd, y. Fits flexmix's mixture of Gaussian linear
# regressions with a multinomial logit gate on the same columns
# (FLXPmultinom), nrep EM runs from random partitions (stepFlexmix), the best
# by training log-likelihood; no minprior, no penalty. Writes the CPU seconds
# of the fit (user + system, system.time), the log-likelihood, the EM
# iterations of the best run, each component's (intercept, slopes, sigma) and
# the gate's coefficients (intercept, slopes; the first component's are 0).
suppressMessages(library(flexmix))
args <- commandArgs(TRUE)
d <- read.csv(args[1])
k <- as.integer(args[2]); nrep <- as.integer(args[3])
ctrl <- list(tolerance = as.numeric(args[4]), iter.max = as.integer(args[5]), minprior = 0)
xs <- setdiff(names(d), "y")
f <- as.formula(paste("y ~", paste(xs, collapse = " + ")))
conc <- FLXPmultinom(as.formula(paste("~", paste(xs, collapse = " + "))))
set.seed(0)
t <- system.time(fit <- stepFlexmix(f, data = d, k = k, nrep = nrep, verbose = FALSE,
                                    control = ctrl, concomitant = conc))
p <- parameters(fit)
g <- parameters(fit, which = "concomitant")
out <- c(sprintf("cpu %.4f", t[["user.self"]] + t[["sys.self"]]),
         sprintf("loglik %.10f", as.numeric(logLik(fit))),
         sprintf("iter %d", fit@iter), sprintf("k %d", ncol(p)))
for (j in seq_len(ncol(p))) out <- c(out, paste("comp", j, paste(sprintf("%.12g", p[, j]), collapse = " ")))
for (j in seq_len(ncol(g))) out <- c(out, paste("gate", j, paste(sprintf("%.12g", g[, j]), collapse = " ")))
writeLines(out, args[6])
