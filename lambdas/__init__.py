"""AWS Lambda functions of the stack, one folder each (packaged by aigw/lambda_package.py)."""
