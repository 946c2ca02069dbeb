from .cls_preprocessor import ClsDataPreprocessor

__all__ = ['ClsDataPreprocessor']
