# flexmix's standard errors on its NPreg data, for benchmarks/flexmix_inference.py.
#
#   Rscript benchmarks/flexmix_inference.R [out.json]
#
# Writes tests/data/flexmix_npreg_inference.json (flexmix's fits: log-likelihood,
# EM parameters, final posterior, and summary(refit(fit)): coefficients and
# standard errors of the components and of the concomitant model), so that
# tests/test_inference.py checks skmoe's numbers without R. The data are the
# same NPreg rows as tests/data/npreg.csv (exported by tests/data/flexmix_npreg.R,
# with their provenance there). Needs R with flexmix and jsonlite
# (Debian: apt-get install r-base-core r-cran-flexmix r-cran-jsonlite).
# R is never a dependency of skmoe or of its CI.

suppressPackageStartupMessages({
  library(flexmix)
  library(jsonlite)
})
args <- commandArgs(trailingOnly = TRUE)
out_json <- if (length(args) >= 1) args[1] else "tests/data/flexmix_npreg_inference.json"

data("NPreg", package = "flexmix")
control <- list(tolerance = 1e-12, iter.max = 20000, minprior = 0)

fit_one <- function(concomitant) {
  # Started from the true classes: the same, well-defined maximum every run.
  if (is.null(concomitant)) {
    fit <- flexmix(yn ~ x + I(x^2), data = NPreg, k = 2, cluster = NPreg$class,
                   control = control)
  } else {
    fit <- flexmix(yn ~ x + I(x^2), data = NPreg, k = 2, cluster = NPreg$class,
                   concomitant = concomitant, control = control)
  }
  r <- refit(fit)
  vc <- r@vcov
  se <- sqrt(diag(vc))
  comps <- lapply(seq_len(fit@k), function(k) {
    p <- parameters(fit, component = k)
    list(coef = unname(p[grep("^coef", rownames(p)), 1]),
         sigma = unname(p["sigma", 1]))
  })
  conc <- if (is.null(concomitant)) NULL else fit@concomitant@coef
  list(
    log_likelihood = as.numeric(logLik(fit)),
    iterations = fit@iter,
    converged = fit@converged,
    em = list(components = comps, concomitant = conc),
    posterior = unname(fit@posterior$scaled),
    refit = list(names = names(r@coef), estimate = unname(r@coef), std_err = unname(se)),
    summary = paste(capture.output(print(summary(r))), collapse = "\n")
  )
}

result <- list(
  data = "NPreg from the R package flexmix (data('NPreg', package = 'flexmix')); the rows of tests/data/npreg.csv",
  script = "benchmarks/flexmix_inference.R",
  source = paste0("R ", getRversion(), ", flexmix ", packageVersion("flexmix"),
                  ": data('NPreg'); flexmix(yn ~ x + I(x^2), k = 2, cluster = NPreg$class, ",
                  "control = list(tolerance = 1e-12, iter.max = 20000, minprior = 0)); ",
                  "refit(fit) (method 'optim': BFGS with hessian = TRUE, sigma on the log scale, ",
                  "concomitant coefficients of component 2 against component 1)"),
  constant = fit_one(NULL),
  concomitant_x = fit_one(FLXPmultinom(~ x)),
  concomitant_x_x2 = fit_one(FLXPmultinom(~ x + I(x^2)))
)
writeLines(toJSON(result, digits = NA, auto_unbox = TRUE, pretty = TRUE), out_json)

cat("wrote", out_json, "\n")
