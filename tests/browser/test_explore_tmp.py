import nbformat
from notebook_page import *
from conftest import copy_notebook

SLOW = '''%%mempamal --async -n 2 -w runs/slow -o res --overwrite
import time
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
def slow_identity(X):
    time.sleep(0.3)
    return X
X, y = load_iris(return_X_y=True)
estimator = make_pipeline(FunctionTransformer(slow_identity), LogisticRegression(max_iter=300))
param_grid = {"logisticregression__C": [0.1, 1.0]}
cv, inner_cv = 4, 2'''

def test_explore(lab, page):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(SLOW), nbformat.v4.new_code_cell("print('free', 6*7)")])
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nbformat.write(nb, lab.root / "slow.ipynb")
    open_notebook(page, lab, "slow.ipynb")
    run_cell(page, 0)
    t0=time.time()
    for i in range(80):
        page.wait_for_timeout(500)
        print(round(time.time()-t0,1), repr(cell_text(page, 0)[:300]))
        if i == 4:
            run_cell(page, 1)
        if i>6 and "finished on local" in cell_text(page,0): break
    page.wait_for_timeout(3000); print("after", repr(cell_text(page,0)[:600])); print("cell1", cell_text(page, 1))
    page.screenshot(path="/work/h4/screens/explore.png", full_page=True)
    print(json.dumps(cell_outputs(page,0))[:1500])
    print(page.console_errors)
