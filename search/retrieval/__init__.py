"""How a question's candidates become an answer: fusion of BM25 and dense rankings
(`fusion`, where the ranking weights are decided), highlights, prompt-ready context,
and the spare-core check that lets BM25 run beside the model (`idle`)."""
