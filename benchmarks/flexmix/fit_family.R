# Fit a two-component mixture of GLMs with flexmix, for benchmarks/flexmix_likelihoods.py.
# Usage: Rscript fit_family.R data.csv family k nrep out.txt
# data.csv: columns x, y. family: gaussian, poisson or gamma (log link, as skmoe's
# GammaRegressor experts; flexmix's own FLXMRglm(family = "Gamma") has the inverse
# link, so the component below is FLXMRglm's Gamma component with link = "log").
# Constant mixing proportions (no concomitant variables), best of nrep EM runs
# (stepFlexmix) from random partitions, tolerance 1e-6 (flexmix's relative rule),
# iter.max 2000, no minprior. Prints the log-likelihood, CPU seconds (user +
# system) and each component's parameters.
suppressMessages(library(flexmix))
args <- commandArgs(TRUE)
d <- read.csv(args[1])
family <- args[2]; k <- as.integer(args[3]); nrep <- as.integer(args[4])

FLXMRgammalog <- function(formula = . ~ .) {
  z <- FLXMRglm(formula, family = "Gamma")
  fam <- Gamma(link = "log")
  z@defineComponent <- function(para) {
    predict <- function(x, ...) fam$linkinv(x %*% para$coef)
    logLik <- function(x, y, ...) dgamma(y, shape = para$shape, scale = predict(x, ...) / para$shape,
                                         log = TRUE)
    new("FLXcomponent", parameters = list(coef = para$coef, shape = para$shape),
        predict = predict, logLik = logLik, df = para$df)
  }
  z@fit <- function(x, y, w, component) {
    fit <- glm.fit(x, y, weights = w, family = fam, start = component$coef)
    # flexmix's Gamma shape: sum(w) / deviance (not the maximum-likelihood shape).
    z@defineComponent(para = list(coef = coef(fit), df = ncol(x) + 1,
                                  shape = sum(fit$prior.weights) / fit$deviance))
  }
  z
}

model <- switch(family,
  gaussian = FLXMRglm(),
  poisson = FLXMRglm(family = "poisson"),
  gamma = FLXMRgammalog(),
  stop("unknown family ", family))
ctrl <- list(tolerance = 1e-6, iter.max = 2000, minprior = 0)
set.seed(0)
times <- system.time({
  fit <- stepFlexmix(y ~ x, data = d, k = k, nrep = nrep, verbose = FALSE, control = ctrl,
                     model = model)
})
p <- parameters(fit)
out <- c(sprintf("loglik %.10f", as.numeric(logLik(fit))),
         sprintf("cpu %.4f", times[["user.self"]] + times[["sys.self"]]),
         sprintf("wall %.4f", times[["elapsed"]]),
         sprintf("iter %d", fit@iter))
for (j in seq_len(ncol(p))) out <- c(out, paste("comp", j, paste(sprintf("%.10g", p[, j]), collapse = " ")))
writeLines(out, args[5])
